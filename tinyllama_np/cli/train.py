"""`tinyllama-np train`: pre-train a small LLaMA, then show the loss curve and samples.

    tinyllama-np train                          the `tiny` preset on the bundled stories
    tinyllama-np train --preset dim288 --out runs/big
    tinyllama-np train --data my_text.txt --vocab-size 1024
    tinyllama-np train --data tinyshakespeare   after `tinyllama-np data fetch tinyshakespeare`
    tinyllama-np train --resume runs/tiny       continue a stopped run exactly
    tinyllama-np train --init-from runs/tiny --freeze tok_embeddings layers.0. --data more.txt
                                                fine-tune with the first layers frozen

The output folder (--out) receives the tokenizer, the token files, train_state.npz (to
resume), model.npz (to generate), log.jsonl (one line per step) and samples.txt.
"""

import json
from dataclasses import asdict, fields
from pathlib import Path

from ..atomic import write_text_atomically
from ..checkpoint import load_checkpoint, save_checkpoint
from ..generation import generate
from ..plot import line_chart
from ..stories import evaluate_stories
from ..tokenizer import load_tokenizer
from ..training import fetch
from ..training.corpus import BUNDLED_NAME, resolve_corpus
from ..training.data import load_tokens, prepare_token_files
from ..training.data_parallel import choose_workers
from ..training.loop import PRESETS, STATE_FILE, load_state, read_log, settings_from_dict, train

def settings_for(args):
    """The preset, with every flag the user gave on top."""
    values = asdict(PRESETS[args.preset])
    for f in fields(PRESETS[args.preset]):
        given = getattr(args, f.name, None)
        if given is not None:
            values[f.name] = given
    return settings_from_dict(values)


def run(args):
    workers, why = choose_workers(args.workers)  # checked before anything is written
    if args.resume:
        out_dir = Path(args.resume)
        _, info = load_state(out_dir)
        settings = settings_from_dict(info["settings"])
        tokenizer = load_tokenizer(out_dir / "tokenizer.model")
        is_stories = json.loads((out_dir / "run.json").read_text())["data"] == BUNDLED_NAME
    else:
        out_dir = Path(args.out or f"runs/{args.preset}")
        if (out_dir / STATE_FILE).exists():
            raise ValueError(f"{out_dir} already holds a training run: continue it with "
                             f"--resume {out_dir}, or choose another --out")
        settings = settings_for(args)
        settings.check()
        documents, tokenizer, is_stories = resolve_corpus(args.data, args.vocab_size)
        # Everything is checked before anything is written.
        prepare_token_files(documents, tokenizer, out_dir / "data", progress=True)
        tokenizer.save(out_dir / "tokenizer.model")
        write_text_atomically(out_dir / "run.json", json.dumps({"data": args.data, "preset": args.preset}))
    train_tokens = load_tokens(out_dir / "data" / "train.npy", tokenizer.vocab_size)
    val_tokens = load_tokens(out_dir / "data" / "val.npy", tokenizer.vocab_size)
    init_from = load_checkpoint(args.init_from) if args.init_from else None
    print(f"training in {out_dir}: {settings.n_layers} layers, dim {settings.dim}, vocabulary "
          f"{tokenizer.vocab_size}, {len(train_tokens):,} training tokens, {settings.steps} steps "
          f"of {settings.batch_size * settings.grad_accum} x {settings.seq_len} tokens, "
          f"{workers} worker{'s' if workers > 1 else ''} ({why})")
    model = train(settings, train_tokens, val_tokens, tokenizer.vocab_size, out_dir,
                  resume=bool(args.resume), stop_at=args.stop_at, init_from=init_from,
                  workers=workers, bos_id=tokenizer.bos_id)
    save_checkpoint(model, out_dir / "model.npz", format="npz")
    show_loss_curve(out_dir)
    if args.samples:
        show_samples(model, tokenizer, out_dir, args.samples, args.show, args.temperature,
                     settings.seed, are_stories=is_stories)


def show_loss_curve(out_dir):
    log = read_log(out_dir)
    if not log:
        return
    validation = {i: record["val_loss"] for i, record in enumerate(log) if "val_loss" in record}
    print("\n" + line_chart([record["loss"] for record in log], marks=validation))
    last = log[-1]
    print(f"final training loss {last['loss']:.3f}"
          + (f", validation loss {last['val_loss']:.3f}" if "val_loss" in last else ""))


def show_samples(model, tokenizer, out_dir, count, shown, temperature, seed, are_stories):
    """Generate `count` texts from BOS alone, print `shown` of them, and save them all.

    Texts of a model trained on the bundled stories are stories, scored by the story grammar;
    any other corpus gives plain samples, which no grammar here can score.
    """
    kind = "stories" if are_stories else "samples"
    print(f"\n{kind} written by the model (temperature {temperature}; all {count} in "
          f"{out_dir / 'samples.txt'}):\n")
    samples = []
    for i in range(count):
        ids = generate(model, [tokenizer.bos_id], model.config.max_seq_len - 1,
                       temperature=temperature, seed=seed + i, eos_id=tokenizer.eos_id)
        sample = tokenizer.decode([t for t in ids if t != tokenizer.eos_id]).strip()
        samples.append(sample)
        if i < shown:
            print(f"[{i + 1}] {sample}\n")
    write_text_atomically(out_dir / "samples.txt", "\n\n".join(samples) + "\n")
    if are_stories:
        report = evaluate_stories(samples)
        checks = ", ".join(f"{entity} {value:.0%}" for entity, value
                           in report["entity_consistency"].items())
        print(f"grammar accepts {report['sentence_acceptance']:.0%} of {report['sentences']} "
              f"sentences; {report['all_entities_consistent']:.0%} of {report['stories']} "
              f"stories keep every character and object the same from start to end "
              f"({checks})")
        write_text_atomically(out_dir / "samples.json", json.dumps(report, indent=1, ensure_ascii=False))


def add_command(subparsers):
    parser = subparsers.add_parser("train", help="pre-train a small LLaMA",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=list(PRESETS), default="tiny")
    parser.add_argument("--data", default=BUNDLED_NAME,
                        help=f"'{BUNDLED_NAME}' (bundled), {' / '.join(fetch.SOURCES)} (fetched), or a text file")
    parser.add_argument("--vocab-size", type=int, default=2048,
                        help="tokenizer size when training one for --data FILE")
    parser.add_argument("--out", help="output folder (default runs/PRESET)")
    parser.add_argument("--resume", metavar="DIR", help="continue the run in DIR exactly")
    parser.add_argument("--stop-at", type=int, metavar="STEP", help="stop after this step (resumable)")
    parser.add_argument("--init-from", metavar="CHECKPOINT", help="start from these weights (fine-tuning)")
    parser.add_argument("--samples", type=int, default=100, help="texts to generate at the end (stories, scored, on the bundled corpus)")
    parser.add_argument("--show", type=int, default=5, help="how many of them to print")
    parser.add_argument("--temperature", type=float, default=0.4, help="sampling temperature for them")
    for name, kind, help_text in [
            ("steps", int, "optimizer steps"), ("batch-size", int, "sequences per micro-batch"),
            ("seq-len", int, "tokens per sequence"), ("grad-accum", int, "micro-batches per step"),
            ("lr", float, "peak learning rate"), ("min-lr", float, "final learning rate"),
            ("warmup-steps", int, "linear warm-up steps"), ("weight-decay", float, "AdamW weight decay"),
            ("grad-clip", float, "global gradient-norm limit (0: none)"), ("seed", int, "random seed"),
            ("dim", int, "model width"), ("n-layers", int, "blocks"), ("n-heads", int, "query heads"),
            ("n-kv-heads", int, "key/value heads"), ("eval-interval", int, "steps between validations"),
            ("checkpoint-interval", int, "steps between checkpoints")]:
        parser.add_argument(f"--{name}", type=kind, dest=name.replace("-", "_"), help=help_text)
    parser.add_argument("--optimizer", choices=["adamw", "sgd"])
    parser.add_argument("--workers", type=int, metavar="N",
                        help="threads sharing each batch, one BLAS thread each (data parallelism; "
                        "default: one per core, or 1 if OPENBLAS_NUM_THREADS or OMP_NUM_THREADS is set)")
    parser.add_argument("--freeze", nargs="+", metavar="PREFIX",
                        help="parameter-name prefixes to keep fixed, e.g. tok_embeddings layers.0.")
    parser.set_defaults(run=run)
