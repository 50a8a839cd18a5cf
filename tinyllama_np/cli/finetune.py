"""`tinyllama-np finetune`: supervised fine-tuning on conversations, with LoRA or in full.

    tinyllama-np finetune --checkpoint runs/tiny --data qa.jsonl --out runs/qa
    tinyllama-np finetune --checkpoint runs/tiny --data qa.jsonl --lora-rank 4 --lora-targets wq wk wv wo
    tinyllama-np finetune --checkpoint runs/tiny --data qa.jsonl --full --lr 1e-3
    tinyllama-np finetune --checkpoint runs/tiny --data qa.jsonl --freeze tok_embeddings layers.0.
    tinyllama-np finetune --resume runs/qa                 continue a stopped run exactly

--data is JSONL, one conversation per line ({"messages": [...]} or {"prompt", "completion"});
the loss counts the assistant's tokens only. The checkpoint may be anything load_checkpoint
reads (our npz or run folder, llama2.c .bin, a Hugging Face folder, a GGUF file); the
tokenizer is looked for beside it (or inside a GGUF file) unless --tokenizer says where.
Conversations are written in the model's chat template when its tokenizer has one (an
instruct model such as SmolLM2 learns in the format it knows), else as plain prompt +
completion (--chat-format chooses). The output folder receives log.jsonl,
finetune_state.npz (to resume), the adapter (adapter.npz and adapter_peft/, for LoRA), the
merged model (model.npz, for `tinyllama-np generate --checkpoint OUT`), the tokenizer, and
samples.json (answers to held-out conversations).
"""

import json
from dataclasses import asdict, fields
from pathlib import Path

from ..atomic import atomic_write, write_text_atomically
from ..checkpoint import checkpoint_format, load_checkpoint, save_checkpoint
from ..checkpoint.adapter import save_adapter
from ..tokenizer import BPETokenizer, load_tokenizer
from ..tokenizer.load import tokenizer_file_in
from ..training.finetune import (STATE_FILE, FinetuneSettings, exact_match, finetune, load_state,
                                 prepare_model, settings_from_dict)
from ..training.lora import merge_lora
from ..generation.chat import FORMATS
from ..training.sft import chat_format_for, make_examples, read_conversations
from .train import show_loss_curve

RUN_FILE = "finetune_run.json"


def find_tokenizer(checkpoint, given):
    if given:
        return Path(given)
    checkpoint = Path(checkpoint)
    if not checkpoint.exists():
        raise FileNotFoundError(f"no checkpoint at {checkpoint}")
    if checkpoint.is_file() and checkpoint_format(checkpoint) == "gguf":
        return checkpoint  # a GGUF file holds its tokenizer
    folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
    try:
        return Path(tokenizer_file_in(folder))
    except ValueError as error:
        raise ValueError(f"no tokenizer beside {checkpoint} ({error}): give one with "
                         "--tokenizer") from None


def settings_for(args):
    values = asdict(FinetuneSettings())
    for f in fields(FinetuneSettings):
        given = getattr(args, f.name, None)
        if given is not None:
            values[f.name] = given
    if args.full:
        values["method"] = "full"
    elif args.freeze:
        values["method"] = "freeze"
    return settings_from_dict(values)


def split_conversations(conversations, val_share, val_data):
    """(train, validation): --val-data if given, else the last val_share of --data."""
    if val_data:
        return conversations, read_conversations(val_data)
    count = max(1, round(len(conversations) * val_share))
    if count >= len(conversations):
        raise ValueError(f"{len(conversations)} conversation(s) are too few to hold out "
                         f"{count} for validation: add more, or give --val-data")
    return conversations[:-count], conversations[-count:]


def run_eval_only(args):
    """Exact match of the checkpoint as it is (e.g. the base model before fine-tuning)."""
    if not (args.checkpoint and (args.val_data or args.data)):
        raise ValueError("--eval-only needs --checkpoint and --val-data (or --data)")
    model = load_checkpoint(args.checkpoint)
    tokenizer = load_tokenizer(find_tokenizer(args.checkpoint, args.tokenizer))
    chat_format = chat_format_for(tokenizer, args.chat_format)
    print(f"chat format: {chat_format.name}")
    conversations = read_conversations(args.val_data or args.data)
    fitting = [m for m in conversations
               if make_examples([m], chat_format, tokenizer, model.config.max_seq_len)[0]]
    shown = fitting[:args.samples]
    accuracy, answers = exact_match(model, tokenizer, chat_format, shown, args.max_new_tokens)
    for messages, got in list(zip(shown, answers))[:5]:
        print(f"  expected {messages[-1]['content']!r:<16} answered {got!r}")
    print(f"exact match on the first {len(shown)} of {len(conversations)} conversations "
          f"({len(conversations) - len(fitting)} left out as longer than the context): {accuracy:.1%}; "
          f"the answer appears somewhere in {answer_anywhere(shown, answers):.1%} of the replies")


def answer_anywhere(conversations, answers):
    """The share of replies that contain the expected answer, wherever (a lenient score for
    a model that answers in a sentence, or after repeating the question)."""
    found = sum(m[-1]["content"].strip() in got for m, got in zip(conversations, answers))
    return found / max(len(answers), 1)


def run(args):
    if args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    if args.eval_only:
        return run_eval_only(args)
    if args.resume:
        out_dir = Path(args.resume)
        _, info = load_state(out_dir)
        settings = settings_from_dict(info["settings"])
        run_info = json.loads((out_dir / RUN_FILE).read_text())
    else:
        if not (args.checkpoint and args.data):
            raise ValueError("give --checkpoint and --data (or --resume DIR)")
        out_dir = Path(args.out or "runs/finetune")
        if (out_dir / STATE_FILE).exists():
            raise ValueError(f"{out_dir} already holds a fine-tuning run: continue it with "
                             f"--resume {out_dir}, or choose another --out")
        settings = settings_for(args)
        settings.check()
        run_info = {"checkpoint": str(args.checkpoint), "data": str(args.data),
                    "val_data": args.val_data and str(args.val_data), "val_share": args.val_share,
                    "tokenizer": str(find_tokenizer(args.checkpoint, args.tokenizer)),
                    "seq_len": args.seq_len, "chat_format": args.chat_format}
    model = load_checkpoint(run_info["checkpoint"])
    tokenizer = load_tokenizer(run_info["tokenizer"])
    if tokenizer.vocab_size > model.config.vocab_size:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} ids but the model only "
                         f"{model.config.vocab_size}: not this model's tokenizer")
    chat_format = chat_format_for(tokenizer, run_info["chat_format"])
    print(f"chat format: {chat_format.name}")
    train_conversations, val_conversations = split_conversations(
        read_conversations(run_info["data"]), run_info["val_share"], run_info["val_data"])
    max_len = min(run_info["seq_len"] or model.config.max_seq_len, model.config.max_seq_len)
    train_examples, counts = make_examples(train_conversations, chat_format, tokenizer, max_len,
                                           settings.overflow)
    val_examples, val_counts = make_examples(val_conversations, chat_format, tokenizer, max_len,
                                             settings.overflow)
    for split, c in (("training", counts), ("validation", val_counts)):
        print(f"{split}: {c['kept']} conversations kept ({c['truncated']} truncated), "
              f"{c['refused']} refused as longer than {max_len} tokens")
    trainable = prepare_model(model, settings)
    total = sum(model.params[name].size for name in model.params if name not in trainable)
    trained = sum(model.params[n].size for n in trainable)
    itemsize = model.dtype.itemsize
    print(f"fine-tuning {run_info['checkpoint']} ({settings.method}): {trained:,} trainable "
          f"values, {total:,} frozen; gradients + AdamW moments take "
          f"{3 * trained * itemsize / 2**20:.2f} MB (weights {(trained + total) * itemsize / 2**20:.2f} MB); "
          f"{settings.steps} steps of {settings.batch_size} conversations")
    if not args.resume:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomically(out_dir / RUN_FILE, json.dumps(run_info, indent=1))
    finetune(settings, model, train_examples, val_examples, out_dir, resume=bool(args.resume),
             stop_at=args.stop_at)
    show_loss_curve(out_dir)
    if args.stop_at is not None and args.stop_at < settings.steps:
        print(f"stopped at step {args.stop_at}; continue with --resume {out_dir}")
        return
    write_outputs(model, tokenizer, chat_format, settings, val_conversations, out_dir,
                  run_info["tokenizer"], args.samples, args.max_new_tokens)


def write_outputs(model, tokenizer, chat_format, settings, val_conversations, out_dir,
                  tokenizer_path, samples, max_new_tokens):
    if settings.method == "lora":
        save_adapter(model, out_dir / "adapter.npz", format="npz")
        save_adapter(model, out_dir / "adapter_peft", format="peft")
        print(f"adapter: {out_dir / 'adapter.npz'} and {out_dir / 'adapter_peft'} (PEFT)")
    fitting = [m for m in val_conversations if len(make_examples([m], chat_format, tokenizer,
                                                                 model.config.max_seq_len)[0])]
    shown = fitting[:samples]
    accuracy, answers = exact_match(model, tokenizer, chat_format, shown, max_new_tokens)
    records = [{"prompt": m[:-1], "expected": m[-1]["content"], "answer": a}
               for m, a in zip(shown, answers)]
    write_text_atomically(out_dir / "samples.json",
                          json.dumps({"exact_match": accuracy, "answers": records}, indent=1,
                                     ensure_ascii=False))
    for record in records[:5]:
        print(f"  expected {record['expected']!r:<16} answered {record['answer']!r}")
    if shown:
        print(f"exact match on {len(shown)} held-out conversations: {accuracy:.0%} "
              f"(all in {out_dir / 'samples.json'})")
    if settings.method == "lora":
        merge_lora(model)
    save_checkpoint(model, out_dir / "model.npz", format="npz")
    copy_tokenizer(tokenizer, tokenizer_path, out_dir)
    print(f"merged model: {out_dir / 'model.npz'} (tinyllama-np generate --checkpoint {out_dir})")


def copy_tokenizer(tokenizer, source, out_dir):
    if isinstance(tokenizer, BPETokenizer):
        tokenizer.save(out_dir / "tokenizer.model")
        return
    source = Path(source)
    with atomic_write(out_dir / source.name) as file:
        file.write(source.read_bytes())


def add_command(subparsers):
    parser = subparsers.add_parser("finetune", help="fine-tune on conversations (LoRA or full)",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="the base model (any format load_checkpoint reads)")
    parser.add_argument("--data", help="conversations, JSONL")
    parser.add_argument("--val-data", help="held-out conversations, JSONL (default: the last "
                                           "--val-share of --data)")
    parser.add_argument("--val-share", type=float, default=0.1)
    parser.add_argument("--tokenizer", help="the model's tokenizer (default: beside the checkpoint)")
    parser.add_argument("--out", help="output folder (default runs/finetune)")
    parser.add_argument("--resume", metavar="DIR", help="continue the run in DIR exactly")
    parser.add_argument("--stop-at", type=int, metavar="STEP", help="stop after this step (resumable)")
    parser.add_argument("--seq-len", type=int, help="longest conversation in tokens (default and "
                                                    "at most: the model's context)")
    parser.add_argument("--chat-format", choices=("auto", "plain") + FORMATS, default="auto",
                        help="how conversations become text: the model's own chat template "
                             "(auto, when it has one), plain prompt + completion (auto's choice "
                             "for our models), or a named template")
    parser.add_argument("--samples", type=int, default=20,
                        help="held-out conversations answered at the end (samples.json)")
    parser.add_argument("--max-new-tokens", type=int, default=16,
                        help="longest answer generated for those conversations")
    parser.add_argument("--eval-only", action="store_true",
                        help="only answer --samples held-out conversations with the checkpoint "
                             "as it is and print the exact-match accuracy (writes nothing)")
    method = parser.add_mutually_exclusive_group()
    method.add_argument("--full", action="store_true", help="train every weight (no LoRA)")
    method.add_argument("--freeze", nargs="+", metavar="PREFIX",
                        help="train every weight except these name prefixes (no LoRA)")
    parser.add_argument("--lora-rank", type=int, dest="lora_rank")
    parser.add_argument("--lora-alpha", type=float, dest="lora_alpha")
    parser.add_argument("--lora-dropout", type=float, dest="lora_dropout")
    parser.add_argument("--lora-targets", nargs="+", dest="lora_targets",
                        help="any of wq wk wv wo w1 w2 w3 output (default wq wv)")
    parser.add_argument("--overflow", choices=["refuse", "truncate"],
                        help="conversations longer than the context (default refuse)")
    for name, kind, help_text in [
            ("steps", int, "optimizer steps"), ("batch-size", int, "conversations per step"),
            ("lr", float, "peak learning rate"), ("min-lr", float, "final learning rate"),
            ("warmup-steps", int, "linear warm-up steps"), ("weight-decay", float, "AdamW weight decay"),
            ("grad-clip", float, "global gradient-norm limit (0: none)"), ("seed", int, "random seed"),
            ("eval-interval", int, "steps between validations"),
            ("checkpoint-interval", int, "steps between checkpoints")]:
        parser.add_argument(f"--{name}", type=kind, dest=name.replace("-", "_"), help=help_text)
    parser.set_defaults(run=run)
