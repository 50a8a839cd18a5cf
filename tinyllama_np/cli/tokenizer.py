"""`tinyllama-np tokenizer train|encode|decode|bench`.

    tinyllama-np tokenizer train --data corpus.txt --vocab-size 4096 --out tok.model
    tinyllama-np tokenizer encode --tokenizer tok.model --text "Hello 世界"   # ids
    echo "Hello 世界" | tinyllama-np tokenizer encode --tokenizer tok.model --show
    tinyllama-np tokenizer decode --tokenizer tok.model 9906 220 3574
    tinyllama-np tokenizer bench                     # speed on ~1 MB of generated text

`--tokenizer` accepts anything `load_tokenizer` reads: our rank file, LLaMA 3's
tokenizer.model, llama2.c's tokenizer.bin, or a folder holding one of them.
"""

import os
import sys
import time

from ..bench.tokenizer import mixed_text, run_bench
from ..tokenizer.bpe import BPETokenizer
from ..tokenizer.load import load_tokenizer
from ..tokenizer.patterns import BEGIN_OF_TEXT, END_OF_TEXT, PATTERNS
from ..tokenizer.rank_file import sidecar_path


def add_command(subparsers):
    parser = subparsers.add_parser(
        "tokenizer", help="train, use and benchmark tokenizers",
        description="Train a byte-level BPE tokenizer, encode and decode text with it, "
                    "or measure its speed.")
    commands = parser.add_subparsers(dest="tokenizer_command", required=True,
                                     metavar="SUBCOMMAND")

    train = commands.add_parser("train", help="learn a BPE vocabulary from a text file")
    train.add_argument("--data", required=True, help="UTF-8 text file to learn from")
    train.add_argument("--vocab-size", type=int, required=True,
                       help="number of token ids, special tokens included")
    train.add_argument("--out", required=True,
                       help="rank file to write (its sidecar goes to OUT.json); if OUT is "
                            "a folder, OUT/tokenizer.model")
    train.add_argument("--pattern", choices=sorted(PATTERNS), default="llama3",
                       help="regex that pre-splits the text (default: llama3)")
    train.add_argument("--special", nargs="*", default=[BEGIN_OF_TEXT, END_OF_TEXT],
                       metavar="NAME", help="special tokens, in id order (default: "
                                            f"{BEGIN_OF_TEXT} {END_OF_TEXT})")
    train.set_defaults(run=run_train)

    encode = commands.add_parser("encode", help="text -> token ids")
    encode.add_argument("--tokenizer", required=True, help="tokenizer file or folder")
    encode.add_argument("--text", help="text to encode (default: read standard input)")
    encode.add_argument("--bos", action="store_true", help="start with the BOS token")
    encode.add_argument("--eos", action="store_true", help="end with the EOS token")
    encode.add_argument("--allow-special", action="store_true",
                        help="turn special-token names in the text into their ids "
                             "(by default they are ordinary text)")
    encode.add_argument("--show", action="store_true",
                        help="print one token per line with the text it stands for")
    encode.set_defaults(run=run_encode)

    decode = commands.add_parser("decode", help="token ids -> text")
    decode.add_argument("--tokenizer", required=True, help="tokenizer file or folder")
    decode.add_argument("ids", nargs="*",
                        help="token ids (default: read them from standard input)")
    decode.set_defaults(run=run_decode)

    bench = commands.add_parser("bench", help="time BPE training and encoding")
    bench.add_argument("--data", help="UTF-8 text file (default: ~1 MB of generated "
                                      "English and Chinese)")
    bench.add_argument("--bytes", type=int, default=1_000_000,
                       help="size of the generated text (default: 1000000)")
    bench.add_argument("--vocab-size", type=int, default=4096)
    bench.set_defaults(run=run_bench_command)


def run_train(args):
    text = read_text_file(args.data)
    out = args.out
    if os.path.isdir(out):
        out = os.path.join(out, "tokenizer.model")
    start = time.perf_counter()
    tokenizer = BPETokenizer.train(text, args.vocab_size, PATTERNS[args.pattern],
                                   args.special, progress=True)
    seconds = time.perf_counter() - start
    tokenizer.save(out)
    if tokenizer.vocab_size < args.vocab_size:
        print(f"note: the text ran out of pairs to merge; the vocabulary has "
              f"{tokenizer.vocab_size} ids, not {args.vocab_size}")
    print(f"trained {tokenizer.vocab_size} tokens on {len(text.encode('utf-8')):,} bytes "
          f"in {seconds:.1f} s; wrote {out} and {sidecar_path(out)}")


def run_encode(args):
    tokenizer = load_tokenizer(args.tokenizer)
    text = args.text if args.text is not None else sys.stdin.read()
    options = {"bos": args.bos, "eos": args.eos}
    if args.allow_special:
        if not isinstance(tokenizer, BPETokenizer):
            raise ValueError("--allow-special: a llama2.c tokenizer has no named special "
                             "tokens; use --bos/--eos")
        options["allowed_special"] = "all"
    ids = tokenizer.encode(text, **options)
    if args.show:
        for token_id in ids:
            print(f"{token_id:>7}  {show_piece(tokenizer.token_bytes(token_id))}")
    else:
        print(" ".join(map(str, ids)))


def run_decode(args):
    words = args.ids if args.ids else sys.stdin.read().replace(",", " ").split()
    ids = []
    for word in words:
        try:
            ids.append(int(word))
        except ValueError:
            raise ValueError(f"not a token id: {word!r}") from None
    print(load_tokenizer(args.tokenizer).decode(ids))


def run_bench_command(args):
    if args.data:
        text = read_text_file(args.data)
        source = args.data
    else:
        text = mixed_text(args.bytes)
        source = "generated English/Chinese text, seed 0"
    result = run_bench(text, args.vocab_size)
    print(f"text: {result['bytes']:,} bytes ({source})")
    print(f"train to {result['vocab_size']} tokens: {result['train_seconds']:.2f} s "
          f"(target: under 30 s for 1 MB to 4096)")
    print(f"encode: {result['encode_mb_per_second']:.2f} MB/s "
          f"({result['encode_seconds']:.2f} s, starting from an empty cache; "
          f"target: at least 1 MB/s)")
    print(f"tokens: {result['tokens']:,} ({result['bytes_per_token']:.2f} bytes per token)")
    if "tiktoken_seconds" in result:
        print(f"tiktoken on the same ranks: {result['tiktoken_seconds']:.2f} s, "
              f"{result['encode_seconds'] / result['tiktoken_seconds']:.1f}x faster than "
              f"ours; same ids: {result['tiktoken_same_ids']}")


def show_piece(piece):
    """A token as text if it is whole characters, else as bytes (part of a character)."""
    try:
        return repr(piece.decode("utf-8"))
    except UnicodeDecodeError:
        return repr(piece)


def read_text_file(path):
    with open(path, "rb") as file:
        data = file.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text (byte offset {error.start}: "
                         f"{error.reason})") from None
