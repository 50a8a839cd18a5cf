"""`tinyllama-np generate`: continue a prompt with a trained model, printing as it goes.

    tinyllama-np generate --checkpoint out/ --prompt "Once upon a time"
    tinyllama-np generate --checkpoint out/ --prompt "Once" --strategy greedy
    tinyllama-np generate --checkpoint out/ --prompt "Once" --strategy top-p --top-p 0.8 --seed 1
    tinyllama-np generate --checkpoint out/ --prompt "Once" --compare
    tinyllama-np generate --checkpoint SmolLM2.gguf --prompt "What is 2+2?" --chat --strategy greedy

--checkpoint is a training output folder (model.npz and the tokenizer beside it) or any
checkpoint file or folder the project reads; the tokenizer is looked for next to it
unless --tokenizer says where. The prompt starts with BOS when the tokenizer has one
(as in training); generation stops at EOS.

Strategies (seed chapter 3.3): greedy; beam (--num-beams, default 4); top-k (--top-k,
default 40); top-p (--top-p, default 0.9); sample (plain sampling at --temperature,
narrowed by --top-k / --top-p if given: exactly tl.generate's options). --compare runs
greedy, beam, top-k and top-p on the same prompt, one after the other.
"""

import os
import sys
import time

from ..checkpoint import checkpoint_format, load_checkpoint
from ..generation import generate_stream
from ..generation.chat import chat_prompt, end_of_turn_id, tokenizer_chat_format
from ..tokenizer import load_tokenizer

STRATEGIES = ("greedy", "beam", "top-k", "top-p", "sample")
DEFAULTS = {"num_beams": 4, "top_k": 40, "top_p": 0.9, "temperature": 1.0}
# Which command-line options each strategy reads.
APPLICABLE = {
    "greedy": (),
    "beam": ("num_beams",),
    "top-k": ("top_k", "temperature"),
    "top-p": ("top_p", "temperature"),
    "sample": ("top_k", "top_p", "temperature"),
}
OPTION_FLAGS = {"num_beams": "--num-beams", "top_k": "--top-k", "top_p": "--top-p",
                "temperature": "--temperature"}


def strategy_options(strategy, given, strict=True):
    """The generate() keyword arguments of a strategy, from the options the user gave.

    given: option name -> value, None when not given. strict: an option the strategy does
    not use is an error (with --compare, each option goes to the strategies that use it).
    """
    options = {"temperature": 0.0} if strategy == "greedy" else {}
    for name, value in given.items():
        if name in APPLICABLE[strategy]:
            if value is not None:
                options[name] = value
            elif strategy != "sample":  # plain sampling narrows nothing by default
                options[name] = DEFAULTS[name]
        elif value is not None and strict:
            raise ValueError(f"{OPTION_FLAGS[name]} does not apply to --strategy {strategy}")
    return options


def describe(strategy, options):
    details = [f"{name.replace('_', '-')} {value}" for name, value in options.items()
               if not (strategy == "greedy" and name == "temperature")]
    return strategy + (f" ({', '.join(details)})" if details else "")


def special_id(tokenizer, name):
    """tokenizer.bos_id / tokenizer.eos_id, or None when the tokenizer has no such token."""
    try:
        return getattr(tokenizer, name)
    except (AttributeError, ValueError):
        return None


def fit_to_context(model, prompt_ids, max_new_tokens, err):
    """Stop at the context limit: as many new tokens as fit, with a note when it is fewer."""
    max_seq_len = model.config.max_seq_len
    if len(prompt_ids) > max_seq_len:
        raise ValueError(f"the prompt is {len(prompt_ids)} tokens long, more than the model's "
                         f"context (max_seq_len={max_seq_len})")
    room = max_seq_len - len(prompt_ids)
    if max_new_tokens > room:
        print(f"note: the context holds {max_seq_len} tokens and the prompt takes "
              f"{len(prompt_ids)}: generating {room} new tokens, not {max_new_tokens}",
              file=err)
        return room
    return max_new_tokens


class TextPrinter:
    """Prints the text of a growing list of token ids, piece by piece, as it grows.

    A token is a run of bytes, and one character can be split over several tokens (a
    Chinese character is 3 bytes in UTF-8): the text so far then ends in the replacement
    character U+FFFD. Such an ending is held back until the next tokens complete it.
    """

    def __init__(self, tokenizer, ids, out):
        self.tokenizer, self.ids, self.out = tokenizer, list(ids), out
        self.printed = 0  # characters of the decoded text printed so far
        self.show(final=False)

    def add(self, token_id):
        self.ids.append(token_id)
        self.show(final=False)

    def show(self, final):
        text = self.tokenizer.decode(self.ids)
        end = len(text) if final else len(text.rstrip("\ufffd"))
        if end > self.printed:
            self.out.write(text[self.printed:end])
            self.out.flush()
            self.printed = end


def generate_text(model, tokenizer, prompt, max_new_tokens, options, out, err,
                  use_cache=True, seed=None, chat=False):
    """Print the prompt and its continuation as the tokens come; returns the new ids.

    The model reads BOS (when the tokenizer has one and uses it: add_bos) + the prompt's
    ids, so an empty prompt starts from BOS; BOS and EOS are not printed. chat: the prompt
    is one user message in the model's chat format; only the answer is printed, and it
    ends at the format's end-of-turn token.
    """
    text_ids = list(tokenizer.encode(prompt))
    bos_id, eos_id = special_id(tokenizer, "bos_id"), special_id(tokenizer, "eos_id")
    if not getattr(tokenizer, "add_bos", True):
        bos_id = None
    prompt_ids = ([] if bos_id is None else [bos_id]) + text_ids
    if chat:
        chat_format, _ = tokenizer_chat_format(tokenizer)
        prompt_ids = chat_prompt([{"role": "user", "content": prompt}], tokenizer)
        eos_id, text_ids = end_of_turn_id(tokenizer, chat_format), []
    if not prompt_ids:
        raise ValueError("the prompt is empty and the tokenizer has no BOS token to start from")
    max_new_tokens = fit_to_context(model, prompt_ids, max_new_tokens, err)
    stream = generate_stream(model, prompt_ids, max_new_tokens, seed=seed, eos_id=eos_id,
                             use_cache=use_cache, **options)
    printer = TextPrinter(tokenizer, text_ids, out)
    new_ids = []
    for token in stream:
        new_ids.append(token)
        if token != eos_id:
            printer.add(token)
    printer.show(final=True)
    out.write("\n")
    out.flush()
    return new_ids


def load_model_and_tokenizer(checkpoint, tokenizer_path=None):
    """The model at `checkpoint` and the tokenizer beside it (or at tokenizer_path)."""
    if not os.path.exists(checkpoint):
        raise FileNotFoundError(f"{checkpoint}: no such checkpoint file or folder")
    if os.path.isdir(checkpoint):
        folder = checkpoint
        training_output = os.path.join(checkpoint, "model.npz")
        model_path = training_output if os.path.isfile(training_output) else checkpoint
    else:
        folder = os.path.dirname(checkpoint) or "."
        model_path = checkpoint
    model = load_checkpoint(model_path)
    if tokenizer_path is None and checkpoint_format(model_path) == "gguf":
        folder = model_path  # a GGUF file holds its tokenizer
    tokenizer = load_tokenizer(tokenizer_path or folder, vocab_size=model.config.vocab_size)
    if tokenizer.vocab_size > model.config.vocab_size:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} tokens but the model only "
                         f"{model.config.vocab_size}: they do not belong together")
    return model, tokenizer


def run_with(model, tokenizer, args, out, err):
    """The command's work, given a loaded model and tokenizer."""
    given = {name: getattr(args, name) for name in OPTION_FLAGS}
    penalty = {} if args.repetition_penalty == 1.0 else {
        "repetition_penalty": args.repetition_penalty}
    if args.max_new_tokens < 0:
        raise ValueError(f"--max-new-tokens must be >= 0, got {args.max_new_tokens}")
    if args.compare:
        if args.strategy is not None:
            raise ValueError("--compare runs every strategy: leave out --strategy")
        for strategy in ("greedy", "beam", "top-k", "top-p"):
            options = {**strategy_options(strategy, given, strict=False), **penalty}
            out.write(f"--- {describe(strategy, options)}\n")
            generate_text(model, tokenizer, args.prompt, args.max_new_tokens, options, out, err,
                          use_cache=not args.no_cache, seed=args.seed, chat=args.chat)
        return
    strategy = args.strategy or "sample"
    options = {**strategy_options(strategy, given), **penalty}
    start = time.perf_counter()
    new_ids = generate_text(model, tokenizer, args.prompt, args.max_new_tokens, options, out,
                            err, use_cache=not args.no_cache, seed=args.seed, chat=args.chat)
    seconds = time.perf_counter() - start
    print(f"[{describe(strategy, options)}: {len(new_ids)} tokens in {seconds:.2f} s, "
          f"{len(new_ids) / max(seconds, 1e-9):.1f} tokens/s]", file=err)


def run(args):
    model, tokenizer = load_model_and_tokenizer(args.checkpoint, args.tokenizer)
    run_with(model, tokenizer, args, sys.stdout, sys.stderr)


def add_command(subparsers):
    parser = subparsers.add_parser("generate", help="continue a prompt with a trained model",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, metavar="PATH",
                        help="training output folder, or a checkpoint file or folder")
    parser.add_argument("--tokenizer", metavar="PATH",
                        help="tokenizer file or folder (default: next to the checkpoint)")
    parser.add_argument("--prompt", required=True, help="the text to continue (may be empty)")
    parser.add_argument("--strategy", choices=STRATEGIES,
                        help="decoding strategy (default: sample)")
    parser.add_argument("--max-new-tokens", type=int, default=100, metavar="N")
    parser.add_argument("--temperature", type=float, metavar="T",
                        help="sampling temperature (default 1.0)")
    parser.add_argument("--top-k", type=int, metavar="K", help="keep the K most probable tokens")
    parser.add_argument("--top-p", type=float, metavar="P",
                        help="keep the smallest set of tokens with probability >= P")
    parser.add_argument("--num-beams", type=int, metavar="N", help="beams for --strategy beam")
    parser.add_argument("--repetition-penalty", type=float, default=1.0, metavar="R",
                        help="> 1 makes tokens already in the text less likely")
    parser.add_argument("--seed", type=int, help="random seed, for repeatable sampling")
    parser.add_argument("--compare", action="store_true",
                        help="run greedy, beam, top-k and top-p on the same prompt")
    parser.add_argument("--chat", action="store_true",
                        help="the prompt is a user message in the model's chat format; "
                             "print the answer")
    parser.add_argument("--no-cache", action="store_true",
                        help="re-read the whole text at every step (slow; to compare)")
    parser.set_defaults(run=run)
