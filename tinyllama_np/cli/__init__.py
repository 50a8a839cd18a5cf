"""The `tinyllama-np` command line: one thin module per command (see main.py)."""

from .main import build_parser, main
