"""`tinyllama-np seq2seq`: train a model on the number task and score it on held-out numbers.

    tinyllama-np seq2seq                          the 2017 encoder-decoder, 1000 steps
    tinyllama-np seq2seq --model llama            the same task for a decoder-only LLaMA
    tinyllama-np seq2seq --translate 342 10005    show these numbers translated both ways

The task (stories/numbers.py): English number words <-> Chinese numerals, 0..99,999, both
directions; --held-out numbers are never trained on and are scored by exact match.
"""

import numpy as np

from ..plot import line_chart
from ..stories import numbers as task
from ..training import number_task
from ..training.task_loop import TaskSettings


def run(args):
    settings = TaskSettings(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                            warmup_steps=args.warmup_steps, seed=args.seed)
    settings.check()
    for n in args.translate:
        task.check_number(n)
    if args.beams < 1:
        raise ValueError(f"--beams must be at least 1, got {args.beams}")
    train_numbers, held_out = task.split_numbers(seed=0, held_out=args.held_out)
    if args.model == "encoder-decoder":
        config = number_task.encoder_decoder_config(dim=args.dim, layers=args.layers or 2,
                                                    hidden_dim=args.hidden_dim,
                                                    norm_first=args.norm_first)
        print(f"encoder-decoder ({'pre' if args.norm_first else 'post'}-norm): "
              f"{config.n_encoder_layers}+{config.n_decoder_layers} layers, dim {config.dim}")
        model, losses, seconds = number_task.train_encoder_decoder(train_numbers, settings, config,
                                                                    progress=not args.quiet)

        def answer(model, numbers, direction):
            return number_task.encoder_decoder_answers(model, numbers, direction, args.beams)
    else:
        if args.beams > 1:
            raise ValueError("--beams applies to the encoder-decoder only")
        config = number_task.llama_config(dim=args.dim, n_layers=args.layers or 4)
        print(f"decoder-only LLaMA: {config.n_layers} layers, dim {config.dim} "
              "(prompt, <sep>, answer; loss on the answer only)")
        model, losses, seconds = number_task.train_llama(train_numbers, settings, config,
                                                          progress=not args.quiet)
        answer = number_task.llama_answers
    print(f"{model.num_params():,} parameters, {settings.steps} steps of {settings.batch_size} "
          f"examples in {seconds:.1f} s")
    print(line_chart(losses, height=8))
    scores, misses = number_task.exact_match(answer, model, held_out)
    for direction, score in scores.items():
        print(f"held-out exact match {direction}: {score:.2%} of {len(held_out)} numbers")
    for direction, n, wrong in misses[:args.show_misses]:
        print(f"  miss {direction} {n}: {wrong!r} (expected {number_task.expected_answer(n, direction)!r})")
    numbers = np.array(args.translate, dtype=np.int64)
    for direction in number_task.DIRECTION_NAMES if len(numbers) else ():
        for n, text in zip(numbers, answer(model, numbers, direction)):
            source = task.english_words(int(n)) if direction == "en-zh" else task.chinese_numerals(int(n))
            mark = "" if text == number_task.expected_answer(int(n), direction) else "   (wrong)"
            print(f"  {source} -> {text}{mark}")


def add_command(subparsers):
    parser = subparsers.add_parser("seq2seq", help="train and score a model on the number task",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["encoder-decoder", "llama"], default="encoder-decoder")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    parser.add_argument("--warmup-steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="initialisation and batches")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--layers", type=int, default=None,
                        help="encoder and decoder layers each (default 2), or LLaMA's (default 4)")
    parser.add_argument("--hidden-dim", type=int, default=128, help="encoder-decoder MLP width")
    parser.add_argument("--norm-first", action="store_true", help="pre-norm instead of post-norm")
    parser.add_argument("--held-out", type=int, default=2000, help="numbers never trained on")
    parser.add_argument("--beams", type=int, default=1, help="beam search width (1: greedy)")
    parser.add_argument("--translate", type=int, nargs="*", default=[], metavar="N",
                        help="numbers to translate both ways at the end")
    parser.add_argument("--show-misses", type=int, default=5)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)
