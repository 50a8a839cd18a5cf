"""Tokenizers: byte-level BPE (LLaMA 3) and llama2.c's SentencePiece-style tokenizer.bin."""

from .bpe import BPETokenizer
from .patterns import GPT2_PATTERN, LLAMA3_PATTERN, LLAMA3_SPECIAL_TOKENS
from .llama2c import Llama2cTokenizer
from .load import load_tokenizer
from .merges_bpe import MergesBPETokenizer
