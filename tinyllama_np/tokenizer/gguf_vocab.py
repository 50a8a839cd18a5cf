"""The tokenizer inside a GGUF file (its `tokenizer.ggml.*` metadata).

    tokenizer.ggml.model        "gpt2": byte-level BPE, tokens + merges (GPT-2, LLaMA 3,
                                SmolLM); "llama": SentencePiece, tokens + scores (LLaMA 2)
    tokenizer.ggml.pre          gpt2 only: which pre-split regular expressions; llama.cpp
                                keeps them in its code under these names (PRE_SPLITS below)
    tokenizer.ggml.tokens       the token strings, by id
    tokenizer.ggml.merges       gpt2: "left right", by rank
    tokenizer.ggml.scores       llama: each token's score (merge the best-scoring pair first)
    tokenizer.ggml.token_type   1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
    tokenizer.ggml.bos_token_id / eos_token_id / add_bos_token
    tokenizer.chat_template     the Jinja template of the chat format (generation/chat.py)
"""

from ..gguf_file import file_error, read_gguf
from .llama2c import Llama2cTokenizer
from .merges_bpe import SPACE_MARK, MergesBPETokenizer
from .patterns import GPT2_PATTERN, LLAMA3_PATTERN

CONTROL, USER_DEFINED = 3, 4

# tokenizer.ggml.pre -> the regular expressions llama.cpp splits with, in order.
PRE_SPLITS = {
    "default": [GPT2_PATTERN],
    "gpt-2": [GPT2_PATTERN],
    "llama-bpe": [LLAMA3_PATTERN],
    "llama3": [LLAMA3_PATTERN],
    "smollm": [r"\p{N}", GPT2_PATTERN],  # every digit alone, then GPT-2's pattern
}


def gguf_tokenizer(path):
    """The tokenizer stored in the GGUF file at `path` (ValueError if it has none we read)."""
    metadata, _, _ = read_gguf(path)
    return tokenizer_from_metadata(metadata, path)


def tokenizer_from_metadata(metadata, path):
    model = metadata.get("tokenizer.ggml.model")
    tokens = metadata.get("tokenizer.ggml.tokens")
    if model is None or tokens is None:
        raise file_error(path, "this GGUF file holds no tokenizer (no tokenizer.ggml.model "
                               "or tokens)")
    types = metadata.get("tokenizer.ggml.token_type")
    if types is not None and len(types) != len(tokens):
        raise file_error(path, f"{len(types)} token types for {len(tokens)} tokens")

    def token_id(key):
        value = metadata.get(f"tokenizer.ggml.{key}_token_id")
        if value is not None and not 0 <= value < len(tokens):
            raise file_error(path, f"tokenizer.ggml.{key}_token_id {value} is not a token id")
        return value

    try:
        if model == "gpt2":
            tokenizer = _gpt2(metadata, tokens, types, path, token_id)
        elif model == "llama":
            tokenizer = _llama(metadata, tokens, path)
        else:
            raise file_error(path, f"tokenizer.ggml.model {model!r} is not supported (we read "
                                   "'gpt2' and 'llama')")
    except ValueError as error:
        if str(error).startswith(str(path)):
            raise
        raise file_error(path, f"the GGUF tokenizer: {error}") from None
    tokenizer.chat_template = metadata.get("tokenizer.chat_template")
    return tokenizer


def _gpt2(metadata, tokens, types, path, token_id):
    pre = metadata.get("tokenizer.ggml.pre", "default")
    if pre not in PRE_SPLITS:
        raise file_error(path, f"tokenizer.ggml.pre {pre!r} is not one we know the split "
                               f"pattern of (we know {', '.join(PRE_SPLITS)})")
    merges = []
    for rank, line in enumerate(metadata.get("tokenizer.ggml.merges", [])):
        left, space, right = line.partition(" ")
        if not space or not left or not right:
            raise file_error(path, f"merge {rank} {line!r:.60} is not 'left right'")
        merges.append((left, right))
    vocab = {}
    for index, token in enumerate(tokens):
        vocab.setdefault(token, index)
    if len(vocab) != len(tokens):
        raise file_error(path, "the vocabulary holds the same token twice")
    added, special = {}, set()
    if types is not None:
        for index in range(len(tokens)):
            if types[index] in (CONTROL, USER_DEFINED):
                added[tokens[index]] = index
                if types[index] == CONTROL:
                    special.add(tokens[index])
    return MergesBPETokenizer(
        vocab, merges, "byte_level", split_patterns=PRE_SPLITS[pre], added_tokens=added,
        special=special, bos_id=token_id("bos"), eos_id=token_id("eos"),
        add_bos=bool(metadata.get("tokenizer.ggml.add_bos_token", False)),
        ignore_merges=pre in ("llama-bpe", "llama3"), unk_id=token_id("unknown"))


def _llama(metadata, tokens, path):
    """SentencePiece tokens with scores: the tokenizer llama2c.py implements, with "▁" for
    the space as llama2.c's export does."""
    scores = metadata.get("tokenizer.ggml.scores")
    if scores is None or len(scores) != len(tokens):
        raise file_error(path, "a 'llama' tokenizer needs one score per token")
    if not metadata.get("tokenizer.ggml.add_space_prefix", True):
        raise file_error(path, "a 'llama' tokenizer without the space prefix is not supported")
    pieces = [token.replace(SPACE_MARK, " ").encode("utf-8") for token in tokens]
    tokenizer = Llama2cTokenizer(pieces, [float(score) for score in scores])
    tokenizer.add_bos = bool(metadata.get("tokenizer.ggml.add_bos_token", True))
    return tokenizer
