"""The `tinyllama-np` command line.

Each feature module adds its own sub-command with `add_command(subparsers)`, which
registers a parser and sets `run=function(args)`. This file only wires them together
and turns expected errors (bad input, missing files) into a one-line message and a
non-zero exit code instead of a traceback.
"""

import argparse
import sys

from . import bench, fetch, generate_cli, train_cli
from .checkpoint import convert
from .stories import commands as stories_commands
from .tokenizer import cli as tokenizer_cli


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tinyllama-np",
        description="A pure-NumPy LLaMA: train, generate, benchmark, convert.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train_cli.add_command(subparsers)
    generate_cli.add_command(subparsers)
    add_data_command(subparsers)
    tokenizer_cli.add_command(subparsers)
    convert.add_command(subparsers)
    bench.add_command(subparsers)
    return parser


def add_data_command(subparsers):
    """`data generate|evaluate` (the bundled stories) and `data fetch` (public corpora)."""
    data = subparsers.add_parser("data", help="corpora: generate, evaluate, fetch",
                                 description="The bundled story corpus and public corpora.")
    data_subparsers = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    stories_commands.add_data_subcommands(data_subparsers)
    fetch.add_fetch_subcommand(data_subparsers)


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
