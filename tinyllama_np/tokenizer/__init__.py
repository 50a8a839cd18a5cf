"""Tokenizers: byte-level BPE (LLaMA 3), llama2.c's SentencePiece-style tokenizer.bin, and
vocab + merges BPE as Hugging Face's tokenizer.json and GGUF files store it."""

from .bpe import BPETokenizer
from .patterns import GPT2_PATTERN, LLAMA3_PATTERN, LLAMA3_SPECIAL_TOKENS
from .llama2c import Llama2cTokenizer
from .load import load_tokenizer
from .merges_bpe import MergesBPETokenizer
