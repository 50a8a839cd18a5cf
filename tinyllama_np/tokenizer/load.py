"""`load_tokenizer(path)`: open any tokenizer we support, recognised by its content.

- a rank file (LLaMA 3's tokenizer.model, or one we saved), with its `.json` sidecar if
  there is one                                             -> BPETokenizer
- our `.json` sidecar itself: the rank file next to it    -> BPETokenizer
- llama2.c's tokenizer.bin                                 -> Llama2cTokenizer
- Hugging Face's tokenizer.json                            -> MergesBPETokenizer
- a GGUF file: the tokenizer inside it                    -> MergesBPETokenizer (gpt2)
                                                             or Llama2cTokenizer (llama)
- a directory: its tokenizer.json, else tokenizer.model, else tokenizer.bin, else its one
  .gguf file
File names do not matter: Meta's LLaMA 2 tokenizer.model is a SentencePiece protobuf,
LLaMA 3's is a rank file, and both have the same name.
"""

import os
import re

from .bpe import BPETokenizer
from .gguf_vocab import gguf_tokenizer
from .huggingface import read_tokenizer_json
from .llama2c import Llama2cTokenizer
from .rank_file import SIDECAR_SUFFIX

# A rank file's first line: base64, one space, a number.
RANK_LINE = re.compile(rb"[A-Za-z0-9+/]+={0,2} [0-9]+\r?")


def load_tokenizer(path, vocab_size=None):
    """Open the tokenizer at `path`; `vocab_size` is only used for a tokenizer.bin,
    which does not store how many tokens it holds (pass the model's vocab_size)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return load_tokenizer(tokenizer_file_in(path), vocab_size)

    with open(path, "rb") as file:
        head = file.read(4096)
    first_line = head.split(b"\n", 1)[0]
    if RANK_LINE.fullmatch(first_line):
        return BPETokenizer.load(path)
    if head.startswith(b"GGUF"):
        return gguf_tokenizer(path)
    if head.lstrip().startswith(b"{"):
        rank_file = path[:-len(SIDECAR_SUFFIX)]
        if path.endswith(SIDECAR_SUFFIX) and os.path.isfile(rank_file) and \
                RANK_LINE.fullmatch(_first_line(rank_file)):
            return BPETokenizer.load(rank_file)  # our sidecar: open its rank file
        return read_tokenizer_json(path)
    try:
        return Llama2cTokenizer.load(path, vocab_size)
    except ValueError as error:
        if _looks_like_sentencepiece_model(head):
            raise ValueError(
                f"{path}: this looks like a SentencePiece protobuf model (LLaMA 1/2's "
                f"tokenizer.model), which we do not read; export it to tokenizer.bin with "
                f"llama2.c's tokenizer.py") from None
        raise ValueError(f"not a rank file, a sidecar or a tokenizer.bin: {error}") from None


def tokenizer_file_in(folder):
    """The tokenizer file of a folder: tokenizer.json, tokenizer.model or tokenizer.bin (the
    first found), else its only .gguf file (a GGUF file holds its tokenizer)."""
    folder = os.fspath(folder)
    for name in ("tokenizer.json", "tokenizer.model", "tokenizer.bin"):
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate):
            return candidate
    ggufs = sorted(name for name in os.listdir(folder) if name.endswith(".gguf"))
    if len(ggufs) == 1:
        return os.path.join(folder, ggufs[0])
    raise ValueError(f"{folder}: directory holds none of tokenizer.json, tokenizer.model, "
                     "tokenizer.bin, or a single .gguf file")


def _first_line(path):
    with open(path, "rb") as file:
        return file.read(4096).split(b"\n", 1)[0]


def _looks_like_sentencepiece_model(head):
    # The protobuf starts with field 1 (the pieces), whose first piece is "<unk>".
    return head[:1] == b"\n" and b"<unk>" in head[:32]
