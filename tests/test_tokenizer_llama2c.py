"""llama2.c's tokenizer.bin: reading, SentencePiece-style encoding, decoding, bad files.

The tokenizer.bin files are written by hand here with struct.pack, and the expected ids
are worked out by hand in the comments.
"""

import random
import struct

import pytest

import tinyllama_np as tl
from tinyllama_np.tokenizer.llama2c import read_tokenizer_bin

# After <unk>, <s>, </s> (ids 0-2) and the byte tokens <0x00>..<0xFF> (ids 3-258):
ORDINARY = [  # (piece, score); id = 259 + position
    (" ", -10.0),   # 259
    ("a", -11.0),   # 260
    ("b", -12.0),   # 261
    ("c", -13.0),   # 262
    ("ab", -1.0),   # 263
    ("bc", -0.5),   # 264
    (" a", -2.0),   # 265
    ("abc", -3.0),  # 266
    (" ab", -4.0),  # 267
    ("中", -5.0),   # 268
    ("文", -6.0),   # 269
    ("中文", -0.2),  # 270
    ("aa", -1.5),   # 271
]


def tokenizer_bin_bytes(ordinary=ORDINARY):
    pieces = [(b"<unk>", 0.0), (b"\n<s>\n", 0.0), (b"\n</s>\n", 0.0)]
    pieces += [(f"<0x{b:02X}>".encode(), 0.0) for b in range(256)]
    pieces += [(text.encode("utf-8"), score) for text, score in ordinary]
    data = struct.pack("<i", max(len(piece) for piece, _ in pieces))
    for piece, score in pieces:
        data += struct.pack("<fi", score, len(piece)) + piece
    return data


@pytest.fixture
def tokenizer_path(tmp_path):
    path = tmp_path / "tokenizer.bin"
    path.write_bytes(tokenizer_bin_bytes())
    return path


@pytest.fixture
def tokenizer(tokenizer_path):
    return tl.load_tokenizer(tokenizer_path)


def test_reads_pieces_and_scores(tokenizer):
    assert isinstance(tokenizer, tl.Llama2cTokenizer)
    assert tokenizer.vocab_size == 259 + len(ORDINARY)
    assert tokenizer.token_bytes(1) == b"\n<s>\n"
    assert tokenizer.token_bytes(3 + 0x41) == b"<0x41>"
    assert tokenizer.token_bytes(270) == "中文".encode()
    assert tokenizer.scores[264] == -0.5


def test_encode_hand_checked_examples(tokenizer):
    # "abc" -> " abc" -> [" ", a, b, c]; best pair "bc" (-0.5) -> [" ", a, bc];
    # then " a" (-2) beats "abc" (-3) -> [" a", bc]; " abc" is not a piece: done.
    assert tokenizer.encode("abc") == [265, 264]
    # "ab" -> [" ", a, b]; "ab" (-1) beats " a" (-2) -> [" ", ab] -> " ab" (-4).
    assert tokenizer.encode("ab") == [267]
    # "x" is not a piece: byte fallback, 0x78 + 3 = 123. "中文" (-0.2) merges.
    assert tokenizer.encode("中文x", bos=True, eos=True) == [1, 259, 270, 123, 2]
    # The emoji is 4 UTF-8 bytes F0 9F 98 80, none of them a piece.
    assert tokenizer.encode("😀") == [259, 0xF0 + 3, 0x9F + 3, 0x98 + 3, 0x80 + 3]
    # Equal scores: the leftmost pair wins, so "aaa" -> [" ", aa, a], not [" a", aa].
    assert tokenizer.encode("aaa") == [259, 271, 260]
    # An empty text gets no dummy prefix.
    assert tokenizer.encode("") == []
    assert tokenizer.encode("", bos=True) == [1]


def test_merges_never_produce_control_or_byte_tokens(tmp_path):
    # With "<0x41>" pieces in the vocabulary, the text "<0x41>" must stay text, not "A".
    pieces = ORDINARY + [(c, -20.0) for c in "<0x41>unk"] + [
        (piece, -1.0) for piece in ["<0", "<0x", "<0x4", "<0x41", "<u", "<un", "<unk"]]
    path = tmp_path / "tokenizer.bin"
    path.write_bytes(tokenizer_bin_bytes(pieces))
    tokenizer = tl.load_tokenizer(path)
    for text in ["<0x41>", "<unk>"]:
        ids = tokenizer.encode(text)
        assert all(i >= 259 for i in ids)
        assert tokenizer.decode(ids) == text


def test_decode_strips_the_dummy_prefix_and_turns_byte_tokens_into_bytes(tokenizer):
    assert tokenizer.decode([1, 265, 264]) == "abc"  # after BOS
    assert tokenizer.decode([265, 264]) == "abc"  # at the start
    assert tokenizer.decode([260, 265, 264, 2]) == "a abc"  # mid-text: the space stays
    assert tokenizer.decode([1, 259, 270, 123, 2]) == "中文x"
    assert tokenizer.decode([259, 0xF0 + 3, 0x9F + 3, 0x98 + 3, 0x80 + 3]) == "😀"
    assert tokenizer.decode([0xF0 + 3, 0x9F + 3]) == "\ufffd"  # part of a character
    assert tokenizer.decode([0]) == "<unk>"


def test_unknown_ids_are_refused(tokenizer):
    with pytest.raises(ValueError, match="unknown token id 272"):
        tokenizer.decode([1, 272])
    with pytest.raises(ValueError, match="unknown token id -1"):
        tokenizer.decode([-1])


def test_round_trip_of_random_text(tokenizer):
    rng = random.Random(0)
    alphabet = "abc 中文xyz\n\t😀é\u0301\x00"
    for _ in range(200):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert tokenizer.decode(tokenizer.encode(text, bos=rng.random() < 0.5)) == text
    with pytest.raises(ValueError, match="surrogate"):
        tokenizer.encode("a\udc00")


def run_c_encode(tokenizer, text):
    """A literal transcription of run.c's encode loop: rescan every pair after each
    merge, take the highest score, the leftmost on ties (merging into ordinary pieces)."""
    lookup = {}
    for token_id in range(tokenizer.vocab_size - 1, 258, -1):
        lookup[tokenizer.pieces[token_id]] = token_id
    tokens = []
    for character in " " + text:
        piece = character.encode("utf-8")
        tokens += [lookup[piece]] if piece in lookup else [b + 3 for b in piece]
    while True:
        best_score, best_id, best_index = -1e10, -1, -1
        for i in range(len(tokens) - 1):
            merged = tokenizer.pieces[tokens[i]] + tokenizer.pieces[tokens[i + 1]]
            token_id = lookup.get(merged, -1)
            if token_id != -1 and tokenizer.scores[token_id] > best_score:
                best_score, best_id, best_index = tokenizer.scores[token_id], token_id, i
        if best_index == -1:
            return tokens
        tokens[best_index:best_index + 2] = [best_id]


def test_heap_encoding_equals_run_c_loop_on_random_vocabularies(tmp_path):
    rng = random.Random(1)
    for trial in range(20):
        letters = "abcd中"
        pieces = {c: -50.0 for c in letters + " "}
        for _ in range(40):
            length = rng.randint(2, 5)
            # Scores from a small set, so that many ties must be broken leftmost.
            pieces["".join(rng.choice(letters + " ") for _ in range(length))] = float(
                -rng.randint(1, 4))
        path = tmp_path / f"random{trial}.bin"
        path.write_bytes(tokenizer_bin_bytes(list(pieces.items())))
        tokenizer = tl.load_tokenizer(path)
        for _ in range(20):
            text = "".join(rng.choice(letters + " é") for _ in range(rng.randint(1, 40)))
            assert tokenizer.encode(text) == run_c_encode(tokenizer, text)


def test_vocab_size_reads_exactly_that_many_tokens(tokenizer_path):
    assert tl.load_tokenizer(tokenizer_path, vocab_size=265).vocab_size == 265
    with pytest.raises(ValueError, match="holds 272 tokens but vocab_size is 300"):
        tl.load_tokenizer(tokenizer_path, vocab_size=300)


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[:-1], r"offset \d+: file ends inside the 2 bytes of token 271"),
    (lambda data: data[:-5], r"offset \d+: file ends inside token 271"),
    (lambda data: struct.pack("<i", -5) + data[4:], "offset 0: max_token_length -5"),
    (lambda data: data[:4] + struct.pack("<fi", 0.0, 999) + data[12:],
     "offset 8: token 0 has length 999"),
    (lambda data: data[:2], "too short"),
])
def test_malformed_tokenizer_bin_is_refused_with_offset(tmp_path, damage, message):
    path = tmp_path / "tokenizer.bin"
    path.write_bytes(damage(tokenizer_bin_bytes()))
    with pytest.raises(ValueError, match=message) as error:
        read_tokenizer_bin(path)
    assert "tokenizer.bin" in str(error.value)


def test_tokenizer_bin_without_byte_tokens_is_refused(tmp_path):
    data = struct.pack("<i", 5)
    for piece in [b"<unk>", b"<s>", b"</s>"] + [b"a"] * 300:
        data += struct.pack("<fi", 0.0, len(piece)) + piece
    path = tmp_path / "tokenizer.bin"
    path.write_bytes(data)
    with pytest.raises(ValueError, match="token 3 should be the byte-fallback token <0x00>"):
        tl.load_tokenizer(path)


def test_vocabulary_without_a_space_cannot_add_the_dummy_prefix(tmp_path):
    path = tmp_path / "tokenizer.bin"
    path.write_bytes(tokenizer_bin_bytes([("a", -1.0)]))
    tokenizer = tl.load_tokenizer(path)
    with pytest.raises(ValueError, match="no ' ' piece"):
        tokenizer.encode("a")
    assert tokenizer.decode([259]) == "a"


def test_decode_accepts_numpy_integers(tokenizer):
    import numpy as np
    assert tokenizer.decode(np.array([1, 265, 264])) == "abc"
