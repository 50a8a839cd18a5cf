"""`load_tokenizer(path)`: open any tokenizer we support, recognised by its content.

- a rank file (LLaMA 3's tokenizer.model, or one we saved), with its `.json` sidecar if
  there is one                                             -> BPETokenizer
- our `.json` sidecar itself: the rank file next to it    -> BPETokenizer
- llama2.c's tokenizer.bin                                 -> Llama2cTokenizer
- a directory: its tokenizer.model, else its tokenizer.bin
File names do not matter: Meta's LLaMA 2 tokenizer.model is a SentencePiece protobuf,
LLaMA 3's is a rank file, and both have the same name.
"""

import os
import re

from .bpe import BPETokenizer
from .llama2c import Llama2cTokenizer
from .rank_file import SIDECAR_SUFFIX

# A rank file's first line: base64, one space, a number.
RANK_LINE = re.compile(rb"[A-Za-z0-9+/]+={0,2} [0-9]+\r?")


def load_tokenizer(path, vocab_size=None):
    """Open the tokenizer at `path`; `vocab_size` is only used for a tokenizer.bin,
    which does not store how many tokens it holds (pass the model's vocab_size)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        for name in ("tokenizer.model", "tokenizer.bin"):
            candidate = os.path.join(path, name)
            if os.path.isfile(candidate):
                return load_tokenizer(candidate, vocab_size)
        raise ValueError(f"{path}: directory holds neither tokenizer.model nor tokenizer.bin")

    with open(path, "rb") as file:
        head = file.read(4096)
    first_line = head.split(b"\n", 1)[0]
    if RANK_LINE.fullmatch(first_line):
        return BPETokenizer.load(path)
    if head.lstrip().startswith(b"{"):
        if not path.endswith(SIDECAR_SUFFIX):
            raise ValueError(f"{path}: a JSON file, but not a rank file's sidecar (which is "
                             f"named <rank file>{SIDECAR_SUFFIX}); pass the rank file")
        return BPETokenizer.load(path[:-len(SIDECAR_SUFFIX)])
    try:
        return Llama2cTokenizer.load(path, vocab_size)
    except ValueError as error:
        if _looks_like_sentencepiece_model(head):
            raise ValueError(
                f"{path}: this looks like a SentencePiece protobuf model (LLaMA 1/2's "
                f"tokenizer.model), which we do not read; export it to tokenizer.bin with "
                f"llama2.c's tokenizer.py") from None
        raise ValueError(f"not a rank file, a sidecar or a tokenizer.bin: {error}") from None


def _looks_like_sentencepiece_model(head):
    # The protobuf starts with field 1 (the pieces), whose first piece is "<unk>".
    return head[:1] == b"\n" and b"<unk>" in head[:32]
