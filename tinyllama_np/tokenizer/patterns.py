"""The regular expressions that pre-split text before BPE, and LLaMA 3's special tokens.

Byte-level BPE never merges across the boundaries these patterns draw, so a token can
never span, say, a word and the punctuation after it. Each pattern is a list of
alternatives tried left to right at every position (`regex.findall`):
  \\p{L} = any letter (Latin, Chinese, ...), \\p{N} = any digit, \\s = whitespace.
"""

# LLaMA 3 (the same as GPT-4's cl100k): English contractions case-insensitively, a word
# with at most one leading non-letter (usually the space before it), numbers in groups
# of at most three digits, punctuation runs, newlines, and whitespace that does not eat
# the space in front of the next word.
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)"
    r"|[^\r\n\p{L}\p{N}]?\p{L}+"
    r"|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+"
    r"|\s+(?!\S)"
    r"|\s+"
)

# GPT-2: contractions (lower case only), a word with an optional leading space, a whole
# number of any length, punctuation runs, whitespace.
GPT2_PATTERN = (
    r"'s|'t|'re|'ve|'m|'ll|'d"
    r"| ?\p{L}+"
    r"| ?\p{N}+"
    r"| ?[^\s\p{L}\p{N}]+"
    r"|\s+(?!\S)"
    r"|\s+"
)

PATTERNS = {"llama3": LLAMA3_PATTERN, "gpt2": GPT2_PATTERN}

BEGIN_OF_TEXT = "<|begin_of_text|>"
END_OF_TEXT = "<|end_of_text|>"

# The 256 special tokens of Meta's LLaMA 3 tokenizer, in id order: they get the ids right
# after the ordinary tokens (128000, 128001, ... for LLaMA 3's 128000 ranks).
LLAMA3_SPECIAL_TOKENS = [
    BEGIN_OF_TEXT,
    END_OF_TEXT,
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|reserved_special_token_2|>",
    "<|reserved_special_token_3|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|reserved_special_token_4|>",
    "<|eot_id|>",  # end of turn, used by the chat models
] + [f"<|reserved_special_token_{i}|>" for i in range(5, 251)]
