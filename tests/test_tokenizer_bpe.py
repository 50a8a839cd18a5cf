"""Byte-level BPE: training, encoding, decoding, special tokens, rank files."""

import base64
import os
import random
from collections import Counter

import pytest
import regex

import tinyllama_np as tl
from tinyllama_np.tokenizer import GPT2_PATTERN, LLAMA3_PATTERN, LLAMA3_SPECIAL_TOKENS
from tinyllama_np.bench.tokenizer import mixed_text
from tinyllama_np.tokenizer.bpe_train import train_bpe

SAMPLE = (mixed_text(40_000, seed=3)
          + "def f(x):\n    return x ** 2  # 12345678\n\t\tindented\r\n"
          + "Emoji 😀👍🏽 and ça, naïve, Ελληνικά, русский, 日本語のテキスト. " * 20)


@pytest.fixture(scope="module")
def tokenizer():
    return tl.BPETokenizer.train(SAMPLE, 700)


# ----- reference implementations: slow, obviously right -----

def naive_train(text, n_new_tokens, pattern):
    """The textbook loop: recount all pairs, merge the most frequent everywhere, repeat."""
    chunk_counts = Counter(regex.findall(pattern, text))
    chunks = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
    counts = list(chunk_counts.values())
    token_bytes = [bytes([b]) for b in range(256)]
    while len(token_bytes) < 256 + n_new_tokens:
        pair_counts = Counter()
        for chunk, count in zip(chunks, counts):
            for pair in zip(chunk, chunk[1:]):
                pair_counts[pair] += count
        if not pair_counts:
            break
        best = min(pair_counts, key=lambda pair: (-pair_counts[pair], pair))
        token_bytes.append(token_bytes[best[0]] + token_bytes[best[1]])
        chunks = [merge_everywhere(chunk, best, len(token_bytes) - 1) for chunk in chunks]
    return token_bytes


def merge_everywhere(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if tuple(ids[i:i + 2]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def reference_encode(tokenizer, text):
    """Split, then per chunk merge the lowest-ranked adjacent pair until none is left."""
    ranks = tokenizer.ranks
    ids = []
    for chunk in regex.findall(tokenizer.pattern, text):
        chunk = chunk.encode("utf-8")
        if chunk in ranks:
            ids.append(ranks[chunk])
            continue
        parts = [bytes([b]) for b in chunk]
        while True:
            candidates = [(ranks[a + b], i) for i, (a, b) in enumerate(zip(parts, parts[1:]))
                          if a + b in ranks]
            if not candidates:
                break
            _, i = min(candidates)
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        ids.extend(ranks[part] for part in parts)
    return ids


def random_unicode_text(rng, length):
    """Text mixing the hard cases: CJK, emoji (with modifiers and joiners), combining
    marks, control characters, long whitespace runs, and any code point but surrogates."""
    pieces = []
    while len(pieces) < length:
        kind = rng.randrange(9)
        if kind == 0:
            pieces.append(rng.choice(["the", " cat", "Hello", "don't", "I'M", " 42", "3.14"]))
        elif kind == 1:
            pieces.append("".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(rng.randint(1, 6))))
        elif kind == 2:
            pieces.append(rng.choice(["😀", "👍🏽", "👨‍👩‍👧", "🇨🇳", "❤️", "\U0001F9EA"]))
        elif kind == 3:
            pieces.append("e\u0301" + "a\u0308\u0323" + rng.choice(["\u0915\u094D\u0937", "\u05D0\u05B8"]))
        elif kind == 4:
            pieces.append(chr(rng.choice(list(range(0, 32)) + [0x7F, 0x85, 0x2028, 0xFEFF])))
        elif kind == 5:
            pieces.append(rng.choice([" ", "\t", "\n", "\r\n", "\u3000", "\u00A0"]) * rng.randint(1, 300))
        elif kind == 6:
            code_point = rng.randint(0, 0x10FFFF)
            if not 0xD800 <= code_point <= 0xDFFF:
                pieces.append(chr(code_point))
        elif kind == 7:
            pieces.append(str(rng.randint(0, 10**12)))
        else:
            pieces.append(rng.choice(["<|end_of_text|>", "<|begin_of_text|>", "'s", "'LL", "!?", "..."]))
    return "".join(pieces)


# ----- training -----

@pytest.mark.parametrize("pattern", [LLAMA3_PATTERN, GPT2_PATTERN], ids=["llama3", "gpt2"])
def test_fast_training_learns_the_same_tokens_as_the_textbook_loop(pattern):
    text = mixed_text(10_000, seed=1) + " aaaa abab aaaaaaa  \n\n 1234567 " * 5
    assert train_bpe(text, 250, pattern) == naive_train(text, 250, pattern)


def test_training_gives_bytes_then_merges_then_special_tokens(tokenizer):
    assert tokenizer.vocab_size == 700
    for byte in range(256):
        assert tokenizer.ranks[bytes([byte])] == byte
    assert len(tokenizer.ranks) == 698
    assert tokenizer.special_tokens == {"<|begin_of_text|>": 698, "<|end_of_text|>": 699}
    assert (tokenizer.bos_id, tokenizer.eos_id) == (698, 699)
    # Frequent Chinese words and English words became single tokens.
    assert tokenizer.encode(" the") == [tokenizer.ranks[" the".encode()]]
    assert tokenizer.encode("我们") == [tokenizer.ranks["我们".encode()]]


def test_training_stops_when_there_is_nothing_left_to_merge():
    tokenizer = tl.BPETokenizer.train("aaaa aaaa", 1000, special_tokens=())
    # " aaaa" and "aaaa" are single tokens after these merges; nothing else can merge.
    assert tokenizer.vocab_size < 1000
    assert tokenizer.encode("aaaa aaaa") == [tokenizer.ranks[b"aaaa"], tokenizer.ranks[b" aaaa"]]


def test_vocab_size_below_bytes_plus_specials_is_refused():
    with pytest.raises(ValueError, match="at least .*258"):
        tl.BPETokenizer.train("hello", 257)
    assert tl.BPETokenizer.train("hello", 258).vocab_size == 258


def test_pattern_choice_changes_how_numbers_split():
    text = "I've 12345 cats!!\n\n  ok"
    assert regex.findall(LLAMA3_PATTERN, text) == [
        "I", "'ve", " ", "123", "45", " cats", "!!\n\n", " ", " ok"]
    assert regex.findall(GPT2_PATTERN, text) == [
        "I", "'ve", " 12345", " cats", "!!", "\n\n ", " ok"]


# ----- encoding and decoding -----

def test_encoding_merges_by_rank_like_the_reference(tokenizer):
    rng = random.Random(7)
    for _ in range(20):
        text = random_unicode_text(rng, 60)
        assert tokenizer.encode(text) == reference_encode(tokenizer, text)
    assert tokenizer.encode(SAMPLE[:5000]) == reference_encode(tokenizer, SAMPLE[:5000])


def test_a_chunk_that_is_a_token_is_that_token_even_if_merges_cannot_reach_it():
    # As in tiktoken: "abc" is a token, but neither "ab" nor "bc" is, so merging alone
    # would leave three bytes. The whole chunk is looked up first.
    ranks = {bytes([b]): b for b in range(256)}
    ranks[b"abc"] = 256
    tokenizer = tl.BPETokenizer(ranks)
    assert tokenizer.encode("abc") == [256]
    assert tokenizer.encode("abcd") == [97, 98, 99, 100]


def test_round_trip_of_random_unicode_strings(tokenizer):
    rng = random.Random(0)
    for _ in range(200):
        text = random_unicode_text(rng, rng.randint(0, 40))
        assert tokenizer.decode(tokenizer.encode(text)) == text


def test_round_trip_of_edge_cases(tokenizer):
    for text in ["", " ", "\x00", "\n" * 1000, " " * 5000 + "x", "\U0010FFFF\uFFFE",
                 "a\u0300\u0301\u0302" * 50, "\r\n\r\n\t \u2028", "中" * 500]:
        assert tokenizer.decode(tokenizer.encode(text)) == text


def test_lone_surrogates_are_refused(tokenizer):
    with pytest.raises(ValueError, match="surrogate.*index 3"):
        tokenizer.encode("abc\ud800def")
    with pytest.raises(TypeError):
        tokenizer.encode(b"bytes")


def test_decoding_part_of_a_character_gives_replacement_not_error(tokenizer):
    ids = tokenizer.encode("é中", allowed_special=())
    assert b"".join(tokenizer.token_bytes(i) for i in ids) == "é中".encode()
    raw = list("é中".encode())  # ids 0..255 are the single bytes
    assert tokenizer.decode(raw[:1]) == "\ufffd"
    assert tokenizer.decode(raw[:4]) == "é\ufffd"
    assert tokenizer.decode(raw) == "é中"


def test_unknown_token_id_in_decode_is_refused(tokenizer):
    with pytest.raises(ValueError, match="unknown token id 700"):
        tokenizer.decode([1, 2, 700])
    with pytest.raises(ValueError, match="unknown token id -1"):
        tokenizer.decode([-1])


def test_bos_and_eos(tokenizer):
    ids = tokenizer.encode("hi", bos=True, eos=True)
    assert ids[0] == tokenizer.bos_id and ids[-1] == tokenizer.eos_id
    assert tokenizer.decode(ids) == "<|begin_of_text|>hi<|end_of_text|>"


# ----- special tokens -----

def test_special_token_text_is_ordinary_text_by_default(tokenizer):
    text = "a<|end_of_text|>b<|begin_of_text|>"
    ids = tokenizer.encode(text)
    assert tokenizer.eos_id not in ids and tokenizer.bos_id not in ids
    assert tokenizer.decode(ids) == text


def test_allowed_special_tokens_become_their_ids(tokenizer):
    text = "a<|end_of_text|>b<|begin_of_text|>"
    ids = tokenizer.encode(text, allowed_special={"<|end_of_text|>"})
    assert ids.count(tokenizer.eos_id) == 1 and tokenizer.bos_id not in ids
    assert ids == (tokenizer.encode("a") + [tokenizer.eos_id]
                   + tokenizer.encode("b<|begin_of_text|>"))
    ids = tokenizer.encode(text, allowed_special="all")
    assert ids == (tokenizer.encode("a") + [tokenizer.eos_id] + tokenizer.encode("b")
                   + [tokenizer.bos_id])
    assert tokenizer.decode(ids) == text
    with pytest.raises(ValueError, match="does not have"):
        tokenizer.encode(text, allowed_special={"<|eot_id|>"})


def test_merges_never_produce_special_tokens():
    # Even when the special token's text is the most common thing in the corpus.
    tokenizer = tl.BPETokenizer.train("<|end_of_text|>" * 500, 400)
    ids = tokenizer.encode("<|end_of_text|>" * 3)
    assert all(i < len(tokenizer.ranks) for i in ids)


# ----- saving and loading -----

def test_save_then_load_gives_the_same_tokenizer(tokenizer, tmp_path):
    path = tmp_path / "tok.model"
    tokenizer.save(path)
    assert sorted(os.listdir(tmp_path)) == ["tok.model", "tok.model.json"]
    first_line = path.read_bytes().split(b"\n")[0]
    assert first_line == b"AA== 0"  # base64 of the byte 0x00, rank 0
    loaded = tl.BPETokenizer.load(path)
    assert loaded.ranks == tokenizer.ranks
    assert loaded.special_tokens == tokenizer.special_tokens
    assert loaded.pattern == tokenizer.pattern
    assert loaded.encode(SAMPLE[:3000]) == tokenizer.encode(SAMPLE[:3000])


def test_rank_file_without_sidecar_gets_llama3_defaults(tokenizer, tmp_path):
    path = tmp_path / "tokenizer.model"
    tokenizer.save(path)
    os.remove(str(path) + ".json")
    loaded = tl.BPETokenizer.load(path)
    assert loaded.pattern == LLAMA3_PATTERN
    assert len(loaded.special_tokens) == 256
    assert loaded.bos_id == 698 and loaded.eos_id == 699
    assert loaded.special_tokens["<|eot_id|>"] == 698 + 9
    assert loaded.vocab_size == 698 + 256
    assert LLAMA3_SPECIAL_TOKENS[-1] == "<|reserved_special_token_250|>"


def test_a_failed_save_leaves_the_old_file_and_no_temporary(tokenizer, tmp_path, monkeypatch):
    path = tmp_path / "tok.model"
    path.write_bytes(b"old")

    def broken_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        tokenizer.save(path)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["tok.model"]


def write_rank_file(tmp_path, lines):
    path = tmp_path / "bad.model"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def byte_lines():
    return [base64.b64encode(bytes([b])) + b" " + str(b).encode() for b in range(256)]


@pytest.mark.parametrize("edit, message", [
    (lambda lines: lines[:10] + [b"AQ=="], "line 11: expected"),        # truncated line
    (lambda lines: lines + [b"!!!= 256"], "line 257: bad base64"),
    (lambda lines: lines + [b"YWI= 5"], "line 257: duplicate rank 5 .also on line 6"),
    (lambda lines: lines + [b"AA== 256"], "line 257: duplicate token"),
    (lambda lines: lines + [b"YWI= 300"], "rank 256 is missing"),
    (lambda lines: lines + [b"YWI= -3"], "line 257: rank must be a whole number"),
    (lambda lines: lines[1:], "rank 0 is missing"),
    (lambda lines: [], "empty rank file"),
])
def test_malformed_rank_files_are_refused_with_file_and_line(tmp_path, edit, message):
    path = write_rank_file(tmp_path, edit(byte_lines()))
    with pytest.raises(ValueError, match=message) as error:
        tl.BPETokenizer.load(path)
    assert "bad.model" in str(error.value)


def test_truncated_rank_file_says_so(tmp_path):
    path = tmp_path / "cut.model"
    path.write_bytes(b"".join(line + b"\n" for line in byte_lines())[:100])
    with pytest.raises(ValueError, match="cut.model, line 14 .*truncated"):
        tl.BPETokenizer.load(path)


def test_rank_file_missing_a_byte_is_refused(tmp_path):
    lines = byte_lines()
    lines[200] = base64.b64encode(b"ab") + b" 200"
    with pytest.raises(ValueError, match="bad.model.*byte 0xC8"):
        tl.BPETokenizer.load(write_rank_file(tmp_path, lines))


def test_malformed_sidecar_is_refused(tokenizer, tmp_path):
    path = tmp_path / "tok.model"
    tokenizer.save(path)
    sidecar = tmp_path / "tok.model.json"
    sidecar.write_text("{not json")
    with pytest.raises(ValueError, match="tok.model.json: not a valid JSON"):
        tl.BPETokenizer.load(path)
    sidecar.write_text('{"pattern": "(unclosed", "special_tokens": {}}')
    with pytest.raises(ValueError, match="not a valid regular expression"):
        tl.BPETokenizer.load(path)
    sidecar.write_text('{"pattern": "\\\\w+", "special_tokens": {"<|x|>": 5}}')
    with pytest.raises(ValueError, match="right after the ranks"):
        tl.BPETokenizer.load(path)


def test_decode_accepts_numpy_integers(tokenizer):
    import numpy as np
    ids = tokenizer.encode("模型 model")
    assert tokenizer.decode(np.array(ids, dtype=np.int64)) == "模型 model"
