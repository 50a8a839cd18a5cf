"""`tinyllama-np convert IN OUT --format npz|llama2c|llama2c-v1|hf|gguf`: change a checkpoint's format.

    tinyllama-np convert stories15M.bin stories15M.npz --format npz
    tinyllama-np convert out/ tiny_hf --format hf --dtype bfloat16
    tinyllama-np convert TinyLlama-1.1B/ tinyllama.bin --format llama2c
    tinyllama-np convert out/ model.gguf --format gguf --dtype q8_0 --tokenizer out/tokenizer.model

IN may be any format load_checkpoint recognises (by content). The weights pass through a
float32 model, which is exact for every stored dtype except float64 npz files.
"""

import time

from ..checkpoint.formats import FORMATS, checkpoint_format, load_checkpoint, save_checkpoint
from ..tokenizer import load_tokenizer


def add_command(subparsers):
    parser = subparsers.add_parser(
        "convert", help="convert a checkpoint between npz, llama2.c and Hugging Face formats",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("input", help="checkpoint file or folder (format detected from content)")
    parser.add_argument("output", help="file (npz, llama2c) or folder (hf) to write")
    parser.add_argument("--format", required=True, choices=FORMATS,
                        help="output format: npz (ours), llama2c (legacy .bin, what run.c "
                             "reads), llama2c-v1 (versioned .bin), hf (Hugging Face folder), "
                             "gguf (llama.cpp)")
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16", "q8_0"),
                        default=None,
                        help="stored weight dtype (npz: float32/float16; hf: float32/float16/"
                             "bfloat16; gguf: float32/float16/q8_0; llama2c: float32 only). "
                             "Default float32")
    parser.add_argument("--tokenizer", metavar="PATH",
                        help="gguf: the tokenizer to store inside (default: a GGUF input's own)")
    parser.set_defaults(run=run)


def run(args):
    start = time.perf_counter()
    source_format = checkpoint_format(args.input)
    model = load_checkpoint(args.input)
    loaded = time.perf_counter()
    tokenizer = None
    if args.tokenizer is not None:
        if args.format != "gguf":
            raise ValueError("--tokenizer is for --format gguf (other formats keep the "
                             "tokenizer in its own file)")
        tokenizer = load_tokenizer(args.tokenizer, vocab_size=model.config.vocab_size)
    elif args.format == "gguf" and source_format == "gguf":
        tokenizer = load_tokenizer(args.input)  # carried over from one GGUF file to the next
    written = save_checkpoint(model, args.output, format=args.format, dtype=args.dtype,
                              tokenizer=tokenizer)
    c = model.config
    print(f"{args.input} ({source_format}): {model.num_params():,} parameters, dim {c.dim}, "
          f"{c.n_layers} layers, {c.n_heads} heads ({c.n_kv_heads} kv), vocab {c.vocab_size}, "
          f"tied {c.tie_embeddings}")
    print(f"-> {written} ({args.format}); loaded in {loaded - start:.1f} s, written in "
          f"{time.perf_counter() - loaded:.1f} s")
