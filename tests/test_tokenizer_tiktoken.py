"""With the same ranks and pattern, our encoding equals tiktoken's, token for token.

tiktoken is not a dependency: these tests skip where it is not installed. Its named
encodings (cl100k, ...) would need a download, so we hand it our own trained ranks.
"""

import random

import pytest

import tinyllama_np as tl
from tinyllama_np.tokenizer import GPT2_PATTERN, LLAMA3_PATTERN
from tinyllama_np.bench.tokenizer import mixed_text

pytestmark = pytest.mark.reference  # counted in the run's summary (conftest.py)
tiktoken = pytest.importorskip("tiktoken")

VARIED_TEXT = [
    "Hello, world! It's a test. They'll say: 'I'd've'... DON'T SHOUT.",
    "大语言模型(LLM)是一种基于深度学习的自然语言处理模型，能够从海量文本数据中学习。",
    "def train(model, steps=1000):\n    for step in range(steps):\n\t\tloss = model(x)  # ok\n",
    "Numbers: 1 12 123 1234 12345 123456789 3.14159 -42 1,000,000 2024-05-01 0x1F",
    "whitespace:   \t\t  \n\n\n   \r\n  \u3000\u3000 end   ",
    "Emoji 😀👍🏽👨‍👩‍👧🇨🇳 ❤️ and accents: café naïve e\u0301 Ελληνικά русский",
    "<|begin_of_text|>special names as text<|end_of_text|><|eot_id|>",
    "mixed中英文text混合123测试 test！？。，",
]


def trained(pattern):
    corpus = mixed_text(30_000, seed=5) + "".join(VARIED_TEXT) * 3
    return tl.BPETokenizer.train(corpus, 800, pattern=pattern)


def reference(tokenizer):
    return tiktoken.Encoding(name="test", pat_str=tokenizer.pattern,
                             mergeable_ranks=tokenizer.ranks,
                             special_tokens=tokenizer.special_tokens)


@pytest.mark.parametrize("pattern", [LLAMA3_PATTERN, GPT2_PATTERN], ids=["llama3", "gpt2"])
def test_same_ids_as_tiktoken_on_varied_text(pattern):
    ours = trained(pattern)
    theirs = reference(ours)
    rng = random.Random(0)
    texts = VARIED_TEXT + [mixed_text(20_000, seed=9)]
    # Random strings of the characters above, so chunks fall apart in unusual places.
    alphabet = "".join(VARIED_TEXT)
    texts += ["".join(rng.choice(alphabet) for _ in range(200)) for _ in range(50)]
    for text in texts:
        assert ours.encode(text) == theirs.encode(text, disallowed_special=())
        assert (ours.encode(text, allowed_special="all")
                == theirs.encode(text, allowed_special="all"))


def test_tiktoken_reads_our_rank_file(tmp_path, monkeypatch):
    from tiktoken.load import load_tiktoken_bpe
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # read the file itself, cache nothing
    ours = trained(LLAMA3_PATTERN)
    path = tmp_path / "tokenizer.model"
    ours.save(path)
    assert load_tiktoken_bpe(str(path)) == ours.ranks
