"""llama2.c's tokenizer.bin: the SentencePiece-style BPE of LLaMA 1/2, with scores.

The file (little-endian, no header besides the first number):
    int32 max_token_length
    then for each token id 0, 1, 2, ...:  float32 score, int32 byte length, the bytes
Ids 0, 1, 2 are <unk>, <s> (BOS), </s> (EOS); ids 3..258 are the byte-fallback tokens
"<0x00>".."<0xFF>"; the rest are ordinary pieces, with SentencePiece's "▁" already
turned into a plain space. The file does not store how many tokens it holds: we read to
the end unless the caller knows the vocab_size (from the model's header, as llama2.c does).

Encoding differs from LLaMA 3's byte-level BPE (bpe.py) in three ways:
- There is no regex pre-split; instead a space is put in front of the text (the "dummy
  prefix"), so that the first word looks like every other word: " Hello" not "Hello".
- The text starts as one piece per Unicode character; a character that is not in the
  vocabulary becomes its UTF-8 bytes as byte-fallback tokens (id = byte + 3).
- Merging repeatedly joins the adjacent pair whose concatenation is a piece with the
  highest score (ties: the leftmost), as llama2.c's run.c does.
One deliberate difference from run.c: merges may only produce ordinary pieces, never
<unk>, <s>, </s> or a byte token, as in SentencePiece itself. (run.c looks the merged
text up in the whole vocabulary, so the literal text "<0x41>" could become the byte "A".)
"""

import heapq
import numbers
import struct

from .bpe import check_encodable

UNKNOWN_ID, BOS_ID, EOS_ID = 0, 1, 2
FIRST_BYTE_ID = 3  # the byte-fallback token of byte b has id b + 3
FIRST_ORDINARY_ID = FIRST_BYTE_ID + 256


class Llama2cTokenizer:
    """Pieces (bytes) and their scores, read from llama2.c's tokenizer.bin."""

    def __init__(self, pieces, scores):
        if len(pieces) != len(scores):
            raise ValueError(f"{len(pieces)} pieces but {len(scores)} scores")
        _check_special_pieces(pieces)
        self.pieces = list(pieces)
        self.scores = list(scores)
        # Look-up from text to id, for ordinary pieces only (see the module docstring).
        # If a piece occurs twice, the lower id wins.
        self._ordinary_id = {}
        for token_id in range(len(pieces) - 1, FIRST_ORDINARY_ID - 1, -1):
            self._ordinary_id[pieces[token_id]] = token_id
        # What each id decodes to: byte-fallback tokens become their single byte.
        self._decoded = list(pieces)
        for byte in range(256):
            self._decoded[FIRST_BYTE_ID + byte] = bytes([byte])

    @classmethod
    def load(cls, path, vocab_size=None):
        pieces, scores = read_tokenizer_bin(path, vocab_size)
        try:
            return cls(pieces, scores)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None

    @property
    def vocab_size(self):
        return len(self.pieces)

    bos_id = BOS_ID
    eos_id = EOS_ID

    def token_bytes(self, token_id):
        """The raw piece of a token, as stored in the file (byte tokens read "<0xNN>")."""
        self._check_id(token_id)
        return self.pieces[token_id]

    # ----- text -> ids -----

    def encode(self, text, bos=False, eos=False):
        """Token ids of `text`, with BOS (1) and EOS (2) added if asked."""
        check_encodable(text)
        ids = [BOS_ID] if bos else []
        if text:  # run.c adds no dummy prefix to an empty text
            if b" " not in self._ordinary_id:
                raise ValueError("this tokenizer.bin has no ' ' piece, which the dummy "
                                 "prefix needs")
            ids.extend(self._merge_by_score(self._characters_to_ids(" " + text)))
        if eos:
            ids.append(EOS_ID)
        return ids

    def _characters_to_ids(self, text):
        ids = []
        for character in text:
            piece = character.encode("utf-8")
            token_id = self._ordinary_id.get(piece)
            if token_id is None:
                ids.extend(FIRST_BYTE_ID + byte for byte in piece)  # byte fallback
            else:
                ids.append(token_id)
        return ids

    def _merge_by_score(self, ids):
        """Merge adjacent pieces, best score first, until no pair forms a piece.

        run.c rescans every pair after each merge (quadratic in the text length). A heap
        of candidate merges gives the same result: we order candidates by (-score,
        position of the left piece), so the best score wins and ties go to the leftmost,
        exactly as in run.c. Pieces live in a linked list (`next_position`) so merging
        two of them is O(1); a candidate whose pieces have changed since it was pushed is
        skipped when it comes out of the heap.
        """
        ids = list(ids)
        texts = [self.pieces[i] for i in ids]
        next_position = list(range(1, len(ids) + 1))
        previous_position = list(range(-1, len(ids) - 1))
        heap = []
        for left in range(len(ids) - 1):
            self._push_candidate(heap, texts, left, left + 1)
        while heap:
            _, left, right, merged_id = heapq.heappop(heap)
            still_valid = (ids[left] is not None and ids[right] is not None
                           and next_position[left] == right
                           and texts[left] + texts[right] == self.pieces[merged_id])
            if not still_valid:
                continue
            ids[left], texts[left] = merged_id, self.pieces[merged_id]
            ids[right] = None  # the right piece is now part of the left one
            after = next_position[right]
            next_position[left] = after
            if after < len(ids):
                previous_position[after] = left
                self._push_candidate(heap, texts, left, after)
            if previous_position[left] >= 0:
                self._push_candidate(heap, texts, previous_position[left], left)
        return [token_id for token_id in ids if token_id is not None]

    def _push_candidate(self, heap, texts, left, right):
        merged_id = self._ordinary_id.get(texts[left] + texts[right])
        if merged_id is not None:
            heapq.heappush(heap, (-self.scores[merged_id], left, right, merged_id))

    # ----- ids -> text -----

    def decode_bytes(self, ids):
        """The bytes the ids stand for.

        As in SentencePiece, BOS and EOS print nothing, and the dummy-prefix space is
        removed from the first piece of the text and from the piece right after a BOS
        (run.c does the latter). So decode(encode(text)) == text, but decoding a slice
        that starts mid-text drops one leading space.
        """
        parts = []
        previous_id = None
        for token_id in ids:
            self._check_id(token_id)
            if token_id in (BOS_ID, EOS_ID):
                previous_id = token_id
                continue
            piece = self._decoded[token_id]
            starts_text = previous_id is None or previous_id == BOS_ID
            if starts_text and self.pieces[token_id].startswith(b" "):
                piece = piece[1:]
            parts.append(piece)
            previous_id = token_id
        return b"".join(parts)

    def decode(self, ids):
        """The text the ids stand for; bytes that are not valid UTF-8 become U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def _check_id(self, token_id):
        if not (isinstance(token_id, numbers.Integral) and 0 <= token_id < len(self.pieces)):
            raise ValueError(f"cannot decode unknown token id {token_id!r}: ids go from 0 "
                             f"to {len(self.pieces) - 1}")


def _check_special_pieces(pieces):
    if len(pieces) < FIRST_ORDINARY_ID:
        raise ValueError(f"only {len(pieces)} tokens: llama2.c needs at least "
                         f"{FIRST_ORDINARY_ID} (<unk>, <s>, </s>, then 256 byte tokens)")
    for byte in range(256):
        expected = f"<0x{byte:02X}>".encode("ascii")
        if pieces[FIRST_BYTE_ID + byte] != expected:
            raise ValueError(f"token {FIRST_BYTE_ID + byte} should be the byte-fallback "
                             f"token {expected.decode()} but is "
                             f"{pieces[FIRST_BYTE_ID + byte]!r}")


def read_tokenizer_bin(path, vocab_size=None):
    """Return (pieces, scores) from a tokenizer.bin, naming the byte offset of any problem.

    With `vocab_size` given, read exactly that many tokens (llama2.c ignores anything
    after them); otherwise read tokens until the end of the file.
    """
    with open(path, "rb") as file:
        data = file.read()
    if len(data) < 4:
        raise ValueError(f"{path}: {len(data)} bytes is too short for a tokenizer.bin "
                         f"(it starts with a 4-byte max_token_length)")
    (max_token_length,) = struct.unpack_from("<i", data, 0)
    if not 0 < max_token_length <= 65536:
        raise ValueError(f"{path}, offset 0: max_token_length {max_token_length} is not "
                         f"plausible; is this a llama2.c tokenizer.bin?")
    pieces, scores = [], []
    offset = 4
    while offset < len(data) and (vocab_size is None or len(pieces) < vocab_size):
        token = len(pieces)
        if offset + 8 > len(data):
            raise ValueError(f"{path}, offset {offset}: file ends inside token {token} "
                             f"(truncated?): need a 4-byte score and a 4-byte length")
        score, length = struct.unpack_from("<fi", data, offset)
        if not 0 <= length <= max_token_length:
            raise ValueError(f"{path}, offset {offset + 4}: token {token} has length "
                             f"{length}, outside 0..max_token_length ({max_token_length})")
        offset += 8
        if offset + length > len(data):
            raise ValueError(f"{path}, offset {offset}: file ends inside the {length} bytes "
                             f"of token {token} (truncated?)")
        pieces.append(data[offset:offset + length])
        scores.append(score)
        offset += length
    if vocab_size is not None and len(pieces) < vocab_size:
        raise ValueError(f"{path}: holds {len(pieces)} tokens but vocab_size is "
                         f"{vocab_size} (truncated?)")
    return pieces, scores
