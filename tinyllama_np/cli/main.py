"""The `tinyllama-np` command line.

Each module in this folder adds one sub-command with `add_command(subparsers)`, which
registers a parser and sets `run=function(args)`; it parses arguments, calls the library and
prints. This file only wires them together and turns expected errors (bad input, missing
files) into a one-line message and a non-zero exit code instead of a traceback.
"""

import argparse
import sys

from . import bench, bert, chat, convert, data, finetune, generate, seq2seq, tokenizer, train


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tinyllama-np",
        description="A pure-NumPy LLaMA: train, generate, benchmark, convert.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (train, finetune, generate, chat, data, tokenizer, convert, bench, seq2seq, bert):
        command.add_command(subparsers)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (ValueError, OSError) as error:
        # Bad input: a clear message, no traceback, non-zero exit.
        print(f"tinyllama-np {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"tinyllama-np {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
