"""Byte-level BPE with regex pre-splitting: the tokenizer of LLaMA 3 (and GPT-2/GPT-4).

Encoding a text takes three steps:
1. Pre-split it with a regular expression into chunks: words, numbers, punctuation runs,
   whitespace (see patterns.py). Tokens never cross a chunk boundary.
2. Turn each chunk into its UTF-8 bytes. Every one of the 256 byte values is a token, so
   any text at all can be encoded: byte-level BPE has no "unknown" token.
3. Merge adjacent pieces of the chunk, lowest rank first, for as long as the merged
   bytes are themselves a token. The rank of a token is the step at which training
   learned it, so frequent pieces (low rank) merge first.

The ranks are all the tokenizer is: `ranks` maps each token's bytes to its rank, which
is also its id. Special tokens (`<|begin_of_text|>`, ...) get the ids after the ranks
and are never produced by merging; they only appear where you ask for them.
"""

import heapq

import regex

from .bpe_train import train_bpe
from .patterns import BEGIN_OF_TEXT, END_OF_TEXT, LLAMA3_PATTERN
from .rank_file import read_tokenizer_files, write_tokenizer_files

# Past this many distinct chunks the encoding cache is emptied, so memory stays bounded.
MAX_CACHED_CHUNKS = 200_000


class BPETokenizer:
    """A byte-level BPE tokenizer: ranks (bytes -> id), a split pattern, special tokens."""

    def __init__(self, ranks, pattern=LLAMA3_PATTERN, special_tokens=None):
        self.ranks = dict(ranks)
        self.pattern = pattern
        self.special_tokens = dict(special_tokens or {})
        _check_ids(self.ranks, self.special_tokens)
        self._split = regex.compile(pattern)
        self._bytes_of_id = {rank: piece for piece, rank in self.ranks.items()}
        for text, token_id in self.special_tokens.items():
            self._bytes_of_id[token_id] = text.encode("utf-8")
        self._cache = {}

    # ----- building one -----

    @classmethod
    def train(cls, text, vocab_size, pattern=LLAMA3_PATTERN,
              special_tokens=(BEGIN_OF_TEXT, END_OF_TEXT), progress=False):
        """Learn a tokenizer of `vocab_size` ids (256 bytes + merges + special tokens).

        If the text runs out of pairs to merge first, the vocabulary is smaller than
        asked; check `vocab_size` on the result.
        """
        special_tokens = list(special_tokens)
        smallest = 256 + len(special_tokens)
        if vocab_size < smallest:
            raise ValueError(
                f"vocab_size {vocab_size} is too small: it must be at least 256 (one token "
                f"per byte) + {len(special_tokens)} special tokens = {smallest}")
        if len(set(special_tokens)) != len(special_tokens):
            raise ValueError(f"special tokens are not distinct: {special_tokens}")
        token_bytes = train_bpe(text, vocab_size - smallest, pattern, progress)
        ranks = {piece: rank for rank, piece in enumerate(token_bytes)}
        specials = {name: len(ranks) + i for i, name in enumerate(special_tokens)}
        return cls(ranks, pattern, specials)

    @classmethod
    def load(cls, path):
        """Read a rank file (LLaMA 3's tokenizer.model format) and its JSON sidecar."""
        ranks, pattern, special_tokens = read_tokenizer_files(path)
        try:
            return cls(ranks, pattern, special_tokens)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None

    def save(self, path):
        """Write the rank file to `path` and the pattern and special tokens to `path`.json."""
        write_tokenizer_files(path, self.ranks, self.pattern, self.special_tokens)

    # ----- what it knows -----

    @property
    def vocab_size(self):
        """Number of ids: every id in 0..vocab_size-1 is a token."""
        return len(self._bytes_of_id)

    @property
    def bos_id(self):
        return self._special_id(BEGIN_OF_TEXT)

    @property
    def eos_id(self):
        return self._special_id(END_OF_TEXT)

    def token_bytes(self, token_id):
        """The bytes of one token (a special token's are its name in UTF-8)."""
        if token_id not in self._bytes_of_id:
            raise ValueError(f"unknown token id {token_id}: ids go from 0 to "
                             f"{self.vocab_size - 1}")
        return self._bytes_of_id[token_id]

    # ----- text -> ids -----

    def encode(self, text, bos=False, eos=False, allowed_special=()):
        """Token ids of `text`; `bos`/`eos` add <|begin_of_text|> / <|end_of_text|>.

        Special-token names inside `text` are ordinary text unless listed in
        `allowed_special` (or it is "all"): then they become their special ids. So text
        from a user can never smuggle in a control token, and decode(encode(text)) == text
        for every string. (Meta's LLaMA 3 tokenizer behaves the same way by default.)

        A lone surrogate such as "\\ud800" is not Unicode text: UTF-8 cannot represent
        it, so it raises ValueError rather than being silently replaced.
        """
        check_encodable(text)
        ids = [self.bos_id] if bos else []
        allowed = self._allowed_special(allowed_special)
        if allowed:
            # Split on the allowed names (longest first, so one that contains another
            # wins); the odd-numbered parts are the names themselves.
            names = sorted(allowed, key=len, reverse=True)
            parts = regex.split("(" + "|".join(regex.escape(n) for n in names) + ")", text)
            for i, part in enumerate(parts):
                if i % 2 == 1:
                    ids.append(self.special_tokens[part])
                else:
                    ids.extend(self._encode_ordinary(part))
        else:
            ids.extend(self._encode_ordinary(text))
        if eos:
            ids.append(self.eos_id)
        return ids

    def _encode_ordinary(self, text):
        ids = []
        cache = self._cache
        for chunk in self._split.findall(text):
            chunk_ids = cache.get(chunk)
            if chunk_ids is None:
                chunk_ids = self._encode_chunk(chunk.encode("utf-8"))
                if len(cache) >= MAX_CACHED_CHUNKS:
                    cache.clear()
                cache[chunk] = chunk_ids
            ids.extend(chunk_ids)
        return ids

    def _encode_chunk(self, chunk):
        """Merge the bytes of one chunk into tokens, lowest rank first, as tiktoken does.

        The rule: find the adjacent pair of pieces whose concatenation has the lowest
        rank (the leftmost such pair on a tie), merge it, repeat until no concatenation
        is a token. Rescanning all pairs after every merge would cost O(n^2) on a long
        chunk (a run of 100,000 spaces, a long line of Chinese), so candidate merges
        wait in a heap ordered by (rank, position of the left piece). Pieces live in a
        linked list (`next_position`) so a merge is O(1); a candidate whose pieces have
        changed since it was pushed no longer spells a token of its rank, and is skipped.
        """
        ranks = self.ranks
        if chunk in ranks:  # a whole chunk that is one token: done (tiktoken does the same)
            return [ranks[chunk]]
        pieces = [chunk[i:i + 1] for i in range(len(chunk))]
        next_position = list(range(1, len(pieces) + 1))
        previous_position = list(range(-1, len(pieces) - 1))
        heap = []
        for left in range(len(pieces) - 1):
            _push_candidate(heap, ranks, pieces, left, left + 1)
        while heap:
            rank, left, right = heapq.heappop(heap)
            still_valid = (pieces[left] is not None and pieces[right] is not None
                           and next_position[left] == right
                           and ranks.get(pieces[left] + pieces[right]) == rank)
            if not still_valid:
                continue
            pieces[left] += pieces[right]
            pieces[right] = None  # the right piece is now part of the left one
            after = next_position[right]
            next_position[left] = after
            if after < len(pieces):
                previous_position[after] = left
                _push_candidate(heap, ranks, pieces, left, after)
            if previous_position[left] >= 0:
                _push_candidate(heap, ranks, pieces, previous_position[left], left)
        return [ranks[piece] for piece in pieces if piece is not None]

    def _allowed_special(self, allowed_special):
        if allowed_special == "all":
            return set(self.special_tokens)
        allowed = set(allowed_special)
        unknown = allowed - set(self.special_tokens)
        if unknown:
            raise ValueError(f"allowed_special names tokens this tokenizer does not have: "
                             f"{sorted(unknown)}")
        return allowed

    def _special_id(self, name):
        if name not in self.special_tokens:
            raise ValueError(f"this tokenizer has no {name} special token")
        return self.special_tokens[name]

    # ----- ids -> text -----

    def decode_bytes(self, ids):
        """The bytes the ids stand for, concatenated."""
        try:
            return b"".join(self._bytes_of_id[i] for i in ids)
        except KeyError:
            bad = next(i for i in ids if i not in self._bytes_of_id)
            raise ValueError(f"cannot decode unknown token id {bad!r}: ids go from 0 to "
                             f"{self.vocab_size - 1}") from None

    def decode(self, ids):
        """The text the ids stand for.

        A token can end in the middle of a character (Chinese characters are 3 bytes),
        so a slice of ids may not be valid UTF-8. Such broken bytes become the
        replacement character U+FFFD instead of raising an error.
        """
        return self.decode_bytes(ids).decode("utf-8", errors="replace")


def _push_candidate(heap, ranks, pieces, left, right):
    """If pieces[left] + pieces[right] is a token, remember that merge in the heap."""
    rank = ranks.get(pieces[left] + pieces[right])
    if rank is not None:
        heapq.heappush(heap, (rank, left, right))


def _check_ids(ranks, special_tokens):
    """Ids must be 0..vocab_size-1 without gaps: ranks first, special tokens after."""
    if set(ranks.values()) != set(range(len(ranks))):
        raise ValueError(f"the ranks must be exactly 0..{len(ranks) - 1}")
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise ValueError(f"no token for the byte 0x{missing[0]:02X} ({len(missing)} of the "
                         f"256 bytes are missing): byte-level BPE needs all 256 to encode "
                         f"any text")
    expected = set(range(len(ranks), len(ranks) + len(special_tokens)))
    if set(special_tokens.values()) != expected:
        raise ValueError(f"the special tokens must have the ids right after the ranks, "
                         f"{len(ranks)}..{len(ranks) + len(special_tokens) - 1}, got "
                         f"{sorted(special_tokens.values())[:5]}...")


def check_encodable(text):
    """Raise unless `text` is a str that UTF-8 can represent (no lone surrogates)."""
    if not isinstance(text, str):
        raise TypeError(f"can only encode a str, not {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(
            f"cannot encode the text: it holds a lone surrogate {text[error.start]!r} at "
            f"index {error.start}, which is not a Unicode character and has no UTF-8 "
            f"bytes") from None
