"""`tinyllama-np bert`: pre-train a small BERT (MLM + NSP) on the bundled stories and score it.

    tinyllama-np bert                       1500 steps, then scores on held-out stories
    tinyllama-np bert --fill "Mia liked to [MASK] rope."

Scores: MLM accuracy at the positions replaced by [MASK], against always guessing the most
frequent token (the unigram baseline), and NSP accuracy (chance: 50%).
"""

from ..models.bert import BertConfig
from ..plot import line_chart
from ..stories import split_stories
from ..tokenizer import load_tokenizer
from ..training import mlm
from ..training.corpus import bundled_folder
from ..training.data import read_text
from ..training.mlm import MASK, fill_in
from ..training.task_loop import TaskSettings

def run(args):
    settings = TaskSettings(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                            warmup_steps=args.warmup_steps, seed=args.seed)
    settings.check()
    for text in args.fill:
        if text.count(MASK) != 1:
            raise ValueError(f"--fill needs exactly one {MASK} in {text!r}")
    folder = bundled_folder()
    tokenizer = load_tokenizer(folder / "tokenizer.model")
    stories = split_stories(read_text(folder / "stories.txt"))
    if args.train_stories < 2 or args.held_out_stories < 2 or \
            args.train_stories + args.held_out_stories > len(stories):
        raise ValueError(f"--train-stories and --held-out-stories must be at least 2 each and "
                         f"together at most the {len(stories)} stories")
    train = mlm.encode_stories(stories[:args.train_stories], tokenizer)
    held_out = mlm.encode_stories(stories[-args.held_out_stories:], tokenizer)
    ids = mlm.SpecialIds.after(tokenizer.vocab_size)
    config = BertConfig(ids.vocab_size, args.dim, args.n_heads, args.layers, 4 * args.dim, max_seq_len=64)
    print(f"BERT: {config.n_layers} layers, dim {config.dim}; {len(train)} training stories, "
          f"{len(held_out)} held out")
    model, losses, seconds = mlm.train_bert(train, config, settings, ids, tokenizer.vocab_size,
                                            progress=not args.quiet)
    print(f"{model.num_params():,} parameters, {settings.steps} steps of {settings.batch_size} "
          f"pairs in {seconds:.1f} s")
    print(line_chart(losses, height=8, label="MLM + NSP loss"))
    baseline = mlm.unigram_guess(train)
    scores = mlm.evaluate_bert(model, held_out, ids, tokenizer.vocab_size, baseline, pairs=args.pairs)
    print(f"held-out MLM accuracy at [MASK]: {scores['masked_accuracy']:.1%} "
          f"({scores['masked_positions']} positions; unigram baseline, always "
          f"{tokenizer.decode([baseline])!r}: {scores['unigram_accuracy']:.1%})")
    print(f"held-out MLM accuracy at every chosen position: {scores['chosen_accuracy']:.1%}")
    print(f"held-out NSP accuracy: {scores['nsp_accuracy']:.1%} of {args.pairs} pairs (chance 50%)")
    for text in args.fill:
        print(f"  {text!r}: {fill_in(model, tokenizer, ids, text)}")


def add_command(subparsers):
    parser = subparsers.add_parser("bert", help="pre-train a small BERT (MLM + NSP) on the stories",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=32, help="sentence pairs per step")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    parser.add_argument("--warmup-steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--n-heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--train-stories", type=int, default=3000, help="the first N stories")
    parser.add_argument("--held-out-stories", type=int, default=500, help="the last N stories")
    parser.add_argument("--pairs", type=int, default=2000, help="held-out sentence pairs scored")
    parser.add_argument("--fill", nargs="*", default=[], metavar="TEXT",
                        help=f"sentences with one {MASK} to fill in at the end")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)
