"""The files a BPE tokenizer is saved in.

1. The rank file, in the format of LLaMA 3's `tokenizer.model` (and tiktoken's
   `.tiktoken` files): one line per token, the base64 of the token's bytes, a space,
   its rank. Base64 because a token is raw bytes, often not valid UTF-8 on its own
   (half of a Chinese character, say). Example: `IHRoZQ== 279` is " the" with rank 279.
2. A small JSON sidecar next to it, `<rank file>.json`, with what the ranks cannot say:
   the split pattern and the special tokens with their ids, e.g.
   {"pattern": "...", "special_tokens": {"<|begin_of_text|>": 4094, ...}}.
   A rank file without a sidecar (Meta's own tokenizer.model) gets LLaMA 3's pattern
   and LLaMA 3's 256 special tokens, numbered from the first id after the ranks.

Files are written atomically: to a temporary file first, then renamed over the target,
so an interrupted save never leaves half a file behind.
"""

import base64
import binascii
import json
import os

import regex

from ..atomic import atomic_write
from .patterns import LLAMA3_PATTERN, LLAMA3_SPECIAL_TOKENS

SIDECAR_SUFFIX = ".json"


def sidecar_path(rank_path):
    return os.fspath(rank_path) + SIDECAR_SUFFIX


def read_tokenizer_files(rank_path):
    """Return (ranks, pattern, special_tokens) from a rank file and its sidecar."""
    ranks = read_rank_file(rank_path)
    sidecar = sidecar_path(rank_path)
    if os.path.exists(sidecar):
        pattern, special_tokens = read_sidecar(sidecar)
    else:
        pattern = LLAMA3_PATTERN
        special_tokens = {name: len(ranks) + i for i, name in enumerate(LLAMA3_SPECIAL_TOKENS)}
    return ranks, pattern, special_tokens


def write_tokenizer_files(rank_path, ranks, pattern, special_tokens):
    sidecar = {"pattern": pattern, "special_tokens": special_tokens}
    write_bytes(sidecar_path(rank_path),
                 (json.dumps(sidecar, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    write_bytes(rank_path, rank_file_bytes(ranks))


def rank_file_bytes(ranks):
    lines = [base64.b64encode(piece) + b" " + str(rank).encode("ascii")
             for piece, rank in sorted(ranks.items(), key=lambda item: item[1])]
    return b"\n".join(lines) + b"\n"


def read_rank_file(path):
    """Parse a rank file into {token bytes: rank}, naming the line of any problem."""
    with open(path, "rb") as file:
        data = file.read()
    ranks = {}
    line_of_rank = {}
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the newline that ends the last line
    if not lines:
        raise ValueError(f"{path}: empty rank file")
    for line_number, line in enumerate(lines, start=1):
        where = f"{path}, line {line_number}"
        if line_number == len(lines) and not data.endswith(b"\n"):
            where += " (the last line has no newline: is the file truncated?)"
        fields = line.split()
        if len(fields) != 2:
            raise ValueError(f"{where}: expected '<base64 of token bytes> <rank>', "
                             f"got {line[:60]!r}")
        encoded, rank_text = fields
        try:
            piece = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise ValueError(f"{where}: bad base64 {encoded[:60]!r}") from None
        if not rank_text.isdigit():
            raise ValueError(f"{where}: rank must be a whole number, got {rank_text[:20]!r}")
        rank = int(rank_text)
        if not piece:
            raise ValueError(f"{where}: empty token")
        if rank in line_of_rank:
            raise ValueError(f"{where}: duplicate rank {rank} (also on line "
                             f"{line_of_rank[rank]})")
        if piece in ranks:
            raise ValueError(f"{where}: duplicate token {piece!r} (also on line "
                             f"{line_of_rank[ranks[piece]]})")
        ranks[piece] = rank
        line_of_rank[rank] = line_number
    if max(line_of_rank) != len(ranks) - 1:
        missing = min(set(range(len(ranks))) - set(line_of_rank))
        raise ValueError(f"{path}: ranks must be 0..{len(ranks) - 1}, one per line, but "
                         f"rank {missing} is missing (truncated or edited file?)")
    return ranks


def read_sidecar(path):
    """Return (pattern, special_tokens) from a sidecar JSON file."""
    with open(path, "rb") as file:
        try:
            sidecar = json.loads(file.read().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: not a valid JSON sidecar: {error}") from None
    if (not isinstance(sidecar, dict) or not isinstance(sidecar.get("pattern"), str)
            or not isinstance(sidecar.get("special_tokens"), dict)):
        raise ValueError(f'{path}: expected {{"pattern": "...", "special_tokens": '
                         f'{{"name": id, ...}}}}')
    try:
        regex.compile(sidecar["pattern"])
    except regex.error as error:
        raise ValueError(f"{path}: the pattern is not a valid regular expression: "
                         f"{error}") from None
    for name, token_id in sidecar["special_tokens"].items():
        if type(token_id) is not int:
            raise ValueError(f"{path}: special token {name!r} has id {token_id!r}, "
                             f"not a whole number")
    return sidecar["pattern"], sidecar["special_tokens"]


def write_bytes(path, data):
    """Write `data` so that readers see the old file or the new one, never a partial one."""
    with atomic_write(path) as file:
        file.write(data)
