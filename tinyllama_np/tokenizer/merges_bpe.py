"""BPE given as a vocabulary and a list of merges: the tokenizers of Hugging Face and GGUF.

bpe.py stores byte-level BPE as tiktoken does (token bytes -> rank, merging whatever pair
makes the lowest-ranked token). Hugging Face's `tokenizers` library and GGUF's "gpt2"
vocabularies store it as two lists instead:

    vocab   token string -> id, e.g. "Ġthe" -> 260
    merges  ["Ġ t", "h e", "Ġt he", ...]: the pair on line r has rank r

and merge, inside each pre-split chunk, the adjacent pair of LOWEST MERGE RANK first (the
leftmost on ties), until no adjacent pair is a merge. Two kinds of these tokenizers:

byte_level   (GPT-2, LLaMA 3, SmolLM) Each chunk's UTF-8 bytes are first written as
             printable characters, one per byte (GPT-2's table: printable ASCII stands for
             itself, the space becomes "Ġ", a newline "Ċ", ...), so every token is a str.
sentencepiece (LLaMA 2, TinyLlama, Mistral, as tokenizer.json) Spaces become "▁" and a
             "▁" is put in front of the text; characters are the starting pieces, and a
             character missing from the vocabulary becomes its UTF-8 bytes as the tokens
             "<0x00>".."<0xFF>" (byte fallback).

Added tokens ("<|im_start|>", ...) are cut out of the text before anything else. Those
marked special are control tokens: like bpe.py, `encode` treats their text as ordinary
text unless `allowed_special` lists them (Hugging Face's `encode_special_tokens=True`), so
text from a user cannot smuggle them in.
"""

import heapq

import regex

from .bpe import check_encodable

SPACE_MARK = "\u2581"  # "▁", SentencePiece's visible space


def byte_to_unicode():
    """GPT-2's table: byte -> one printable character. Printable Latin-1 bytes map to
    themselves; the other 68 (control bytes, space, ...) to the characters from U+0100 on,
    in order, so "Ġ" (U+0120) is the space, byte 32."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1))
                 + list(range(0xAE, 0xFF + 1)))
    table, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + extra)
            extra += 1
    return table


BYTE_TO_UNICODE = byte_to_unicode()
UNICODE_TO_BYTE = {character: byte for byte, character in BYTE_TO_UNICODE.items()}


def split_keeping_gaps(pattern, text):
    """The matches of `pattern` in `text` AND the text between them, in order (Hugging
    Face's Split with behaviour "Isolated": nothing is dropped)."""
    pieces, position = [], 0
    for match in pattern.finditer(text):
        if match.start() > position:
            pieces.append(text[position:match.start()])
        if match.end() > match.start():
            pieces.append(match.group())
        position = match.end()
    if position < len(text):
        pieces.append(text[position:])
    return pieces


class MergesBPETokenizer:
    """vocab + merges BPE. kind: "byte_level" or "sentencepiece".

    split_patterns: regular expressions applied one after the other (each splits the pieces
        of the previous one, keeping gaps); byte_level only.
    added_tokens: text -> id of tokens cut out before BPE; `special` names the control ones.
    bos_id, eos_id: None when the tokenizer has no such token; add_bos: whether a plain
        prompt should start with BOS (LLaMA 2 yes, SmolLM2 no).
    unk_id: the id for a piece the vocabulary lacks (byte-level vocabularies may lack a few
        bytes); None: such text is an error.
    ignore_merges: a chunk that is itself a token is taken whole (LLaMA 3's tokenizer.json).
    prefix: "never", "first" or "always": put "▁" (sentencepiece) or a space (byte_level)
        in front of the text unless it starts with one: of the first piece of text only, or
        of every piece between added tokens. "prepend": in front of every piece, even one
        that starts with a space (what LLaMA 2's Prepend normalizer does).
    split_on_mark: sentencepiece: cut the text before every "▁" first (Metaspace split).
    """

    def __init__(self, vocab, merges, kind, split_patterns=(), added_tokens=None,
                 special=(), bos_id=None, eos_id=None, add_bos=False, ignore_merges=False,
                 prefix="never", split_on_mark=False, byte_fallback=True, unk_id=None):
        if kind not in ("byte_level", "sentencepiece"):
            raise ValueError(f"unknown BPE kind {kind!r}")
        self.kind, self.vocab = kind, dict(vocab)
        self.added_tokens = dict(added_tokens or {})
        self.special = set(special)
        self.bos_id, self.eos_id, self.add_bos = bos_id, eos_id, add_bos
        self.unk_id = unk_id
        if prefix not in ("never", "first", "always", "prepend"):
            raise ValueError(f"prefix must be never, first, always or prepend, not {prefix!r}")
        self.ignore_merges, self.prefix = ignore_merges, prefix
        self.split_on_mark, self.byte_fallback = split_on_mark, byte_fallback
        self.split_patterns = [regex.compile(p) for p in split_patterns]
        self.merge_rank = {}
        for rank, (left, right) in enumerate(merges):
            for part in (left, right, left + right):
                if part not in self.vocab:
                    raise ValueError(f"merge {rank} ({left!r} {right!r}) uses {part!r}, which "
                                     "is not in the vocabulary")
            self.merge_rank.setdefault((left, right), rank)
        self.token_of_id = {token_id: token for token, token_id in self.vocab.items()}
        for text, token_id in self.added_tokens.items():
            self.token_of_id[token_id] = text
        size = len(self.token_of_id)
        if set(self.token_of_id) != set(range(size)):
            raise ValueError(f"token ids must be 0..{size - 1} without gaps")
        self.byte_ids = [self.vocab.get(f"<0x{b:02X}>") for b in range(256)]
        if kind == "sentencepiece" and byte_fallback and None in self.byte_ids:
            raise ValueError("byte_fallback needs the 256 tokens <0x00>..<0xFF>")
        self._added_ids = set(self.added_tokens.values())
        self._cache = {}

    # ----- what it knows -----

    @property
    def vocab_size(self):
        return len(self.token_of_id)

    @property
    def special_tokens(self):
        return {text: token_id for text, token_id in self.added_tokens.items()
                if text in self.special}

    def token_id(self, text):
        """The id of a token given by its text (an added token's, or a vocabulary string)."""
        if text in self.added_tokens:
            return self.added_tokens[text]
        if text in self.vocab:
            return self.vocab[text]
        raise ValueError(f"no token {text!r} in this tokenizer")

    def token_bytes(self, token_id):
        if token_id not in self.token_of_id:
            raise ValueError(f"unknown token id {token_id}: ids go from 0 to "
                             f"{self.vocab_size - 1}")
        return self._decode_token(token_id, self.token_of_id[token_id])

    # ----- text -> ids -----

    def encode(self, text, bos=False, eos=False, allowed_special=()):
        """Token ids of `text` (no BOS/EOS unless asked). Special-token text is ordinary
        text unless listed in `allowed_special` (or it is "all")."""
        check_encodable(text)
        if allowed_special == "all":
            allowed = self.special
        else:
            allowed = set(allowed_special)
            if allowed - self.special:
                raise ValueError(f"allowed_special names tokens this tokenizer does not have "
                                 f"as special tokens: {sorted(allowed - self.special)}")
        cut = [t for t in self.added_tokens if t not in self.special or t in allowed]
        ids = [self._required("bos_id")] if bos else []
        parts = [text]
        if cut:
            names = sorted(cut, key=len, reverse=True)
            parts = regex.split("(" + "|".join(regex.escape(n) for n in names) + ")", text)
        for index, part in enumerate(parts):
            if index % 2:
                ids.append(self.added_tokens[part])
            elif part:
                ids.extend(self._encode_text(part, first=index == 0))
        if eos:
            ids.append(self._required("eos_id"))
        return ids

    def _required(self, name):
        if getattr(self, name) is None:
            raise ValueError(f"this tokenizer has no {name[:3].upper()} token")
        return getattr(self, name)

    def _encode_text(self, text, first):
        if self.kind == "sentencepiece":
            text = text.replace(" ", SPACE_MARK)
            if self.prefix == "prepend" or (
                    self._prefixed(first) and not text.startswith(SPACE_MARK)):
                text = SPACE_MARK + text
            chunks = regex.findall(f"[^{SPACE_MARK}]+|{SPACE_MARK}[^{SPACE_MARK}]*", text) \
                if self.split_on_mark else [text]
        else:
            if self._prefixed(first) and not text.startswith(" "):
                text = " " + text
            chunks = [text]
            for pattern in self.split_patterns:
                chunks = [piece for chunk in chunks for piece in split_keeping_gaps(pattern, chunk)]
        ids = []
        for chunk in chunks:
            chunk_ids = self._cache.get(chunk)
            if chunk_ids is None:
                chunk_ids = self._encode_chunk(chunk)
                if len(self._cache) > 100_000:
                    self._cache.clear()
                self._cache[chunk] = chunk_ids
            ids.extend(chunk_ids)
        return ids

    def _prefixed(self, first):
        return self.prefix == "always" or (self.prefix == "first" and first)

    def _encode_chunk(self, chunk):
        if self.kind == "byte_level":
            chunk = "".join(BYTE_TO_UNICODE[b] for b in chunk.encode("utf-8"))
        if self.ignore_merges and chunk in self.vocab:
            return [self.vocab[chunk]]
        pieces = self._merge(list(chunk))
        ids = []
        for piece in pieces:
            if piece in self.vocab:
                ids.append(self.vocab[piece])
            elif self.byte_fallback and self.kind == "sentencepiece":
                ids.extend(self.byte_ids[b] for b in piece.encode("utf-8"))
            elif self.unk_id is not None:  # a byte the vocabulary lacks (SmolLM2 lacks 21)
                ids.append(self.unk_id)
            else:
                raise ValueError(f"cannot encode {piece!r}: not in the vocabulary, and this "
                                 "tokenizer has neither byte fallback nor an unknown token")
        return ids

    def _merge(self, pieces):
        """Merge adjacent pieces, lowest merge rank first (leftmost on ties). A heap holds
        candidate merges; pieces form a linked list; a stale candidate is skipped (as in
        bpe.py's _encode_chunk, which this mirrors with merge ranks instead of token ranks)."""
        ranks = self.merge_rank
        following = list(range(1, len(pieces) + 1))
        preceding = list(range(-1, len(pieces) - 1))
        heap = [(ranks[(pieces[i], pieces[i + 1])], i, i + 1) for i in range(len(pieces) - 1)
                if (pieces[i], pieces[i + 1]) in ranks]
        heapq.heapify(heap)
        while heap:
            rank, left, right = heapq.heappop(heap)
            if (pieces[left] is None or pieces[right] is None or following[left] != right
                    or ranks.get((pieces[left], pieces[right])) != rank):
                continue
            pieces[left] += pieces[right]
            pieces[right] = None
            after = following[right]
            following[left] = after
            if after < len(pieces):
                preceding[after] = left
                pair_rank = ranks.get((pieces[left], pieces[after]))
                if pair_rank is not None:
                    heapq.heappush(heap, (pair_rank, left, after))
            before = preceding[left]
            if before >= 0:
                pair_rank = ranks.get((pieces[before], pieces[left]))
                if pair_rank is not None:
                    heapq.heappush(heap, (pair_rank, before, left))
        return [piece for piece in pieces if piece is not None]

    # ----- ids -> text -----

    def _decode_token(self, token_id, token):
        if token_id in self._added_ids:
            return token.encode("utf-8")
        if self.kind == "byte_level":
            return bytes(UNICODE_TO_BYTE.get(c, 0x3F) for c in token)  # "?" if not a byte
        if len(token) == 6 and token.startswith("<0x") and token.endswith(">") and \
                self.byte_ids[int(token[3:5], 16)] == token_id:
            return bytes([int(token[3:5], 16)])
        return token.replace(SPACE_MARK, " ").encode("utf-8")

    def decode_bytes(self, ids):
        parts = []
        for token_id in ids:
            parts.append(self.token_bytes(token_id))
        data = b"".join(parts)
        if self.kind == "sentencepiece" and self.prefix != "never" and data.startswith(b" "):
            data = data[1:]  # the space the encoder put in front of the text
        return data

    def decode(self, ids):
        """The text of the ids; bytes that are not valid UTF-8 become U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")
