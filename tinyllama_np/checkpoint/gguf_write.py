"""Writing GGUF files (layout in gguf.py), so a model trained here runs in llama.cpp / ollama.

    weights     f32, f16 or q8_0 for the matrices (q8_0 needs rows that are whole blocks of
                32; a matrix whose rows are not stays f16, as llama.cpp's converter does);
                the RMSNorm scales always f32
    metadata    general.architecture = "llama" and the llama.* hyper-parameters
    tokenizer   when given: our byte-level BPE as a "gpt2" vocabulary (tokens + merges),
                llama2.c's as a "llama" one (tokens + scores + token types), and a vocab +
                merges one (read from GGUF or tokenizer.json) as "gpt2" again

Our BPETokenizer stores ranks, not merges (bpe.py): the merge that makes token t is found by
running BPE on t's bytes with only the tokens ranked below t, which leaves exactly two
pieces (the standard conversion of tiktoken vocabularies).
"""

import struct

import numpy as np

from ..atomic import atomic_write
from ..nn.position import scaled_frequencies
from ..tokenizer.bpe import BPETokenizer
from ..tokenizer.llama2c import Llama2cTokenizer
from ..tokenizer.gguf_vocab import PRE_SPLITS
from ..tokenizer.merges_bpe import BYTE_TO_UNICODE, SPACE_MARK, MergesBPETokenizer
from ..tokenizer.patterns import GPT2_PATTERN, LLAMA3_PATTERN
from ..gguf_file import ARRAY, BOOL, DEFAULT_ALIGNMENT, FLOAT32, INT32, MAGIC, STRING, UINT32
from .gguf import GLOBAL_NAMES, LAYER_NAMES, ROPE_FREQS
from .gguf_quants import TYPE_IDS, quantize_q8_0, tensor_bytes
from .tensors import CHUNK_ELEMENTS

DTYPES = {"f32": "F32", "f16": "F16", "q8_0": "Q8_0"}
FILE_TYPES = {"f32": 0, "f16": 1, "q8_0": 7}  # general.file_type: ggml's "mostly ..." codes
PRE_NAMES = {LLAMA3_PATTERN: "llama-bpe", GPT2_PATTERN: "gpt-2"}
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, BYTE = 1, 2, 3, 4, 6


def _string(text):
    data = text.encode("utf-8")
    return struct.pack("<Q", len(data)) + data


def _value(kind, value):
    """The bytes of one metadata value: (kind, value) with kind one of the ids above, or
    (ARRAY, (element kind, list))."""
    if kind == STRING:
        return _string(value)
    if kind == ARRAY:
        element_kind, items = value
        head = struct.pack("<IQ", element_kind, len(items))
        if element_kind == STRING:
            return head + b"".join(_string(item) for item in items)
        dtype = {UINT32: "<u4", INT32: "<i4", FLOAT32: "<f4"}[element_kind]
        return head + np.asarray(items, dtype).tobytes()
    return struct.pack({UINT32: "<I", INT32: "<i", FLOAT32: "<f", BOOL: "<?"}[kind], value)


def gguf_tensor_names(config):
    """GGUF name -> our name, for every parameter of `config`, in llama.cpp's order."""
    ours_to_gguf = {ours: theirs for theirs, ours in GLOBAL_NAMES.items()}
    names = {"token_embd.weight": "tok_embeddings.weight"}
    for i in range(config.n_layers):
        for theirs, ours in LAYER_NAMES.items():
            names[f"blk.{i}.{theirs}"] = f"layers.{i}.{ours}"
    names["output_norm.weight"] = "norm.weight"
    if not config.tie_embeddings:
        names[ours_to_gguf["output.weight"]] = "output.weight"
    return names


def model_metadata(config, dtype, name):
    c = config
    metadata = {
        "general.architecture": (STRING, "llama"),
        "general.name": (STRING, name),
        "general.file_type": (UINT32, FILE_TYPES[dtype]),
        "llama.context_length": (UINT32, c.max_seq_len),
        "llama.embedding_length": (UINT32, c.dim),
        "llama.block_count": (UINT32, c.n_layers),
        "llama.feed_forward_length": (UINT32, c.hidden_dim),
        "llama.attention.head_count": (UINT32, c.n_heads),
        "llama.attention.head_count_kv": (UINT32, c.n_kv_heads),
        "llama.attention.layer_norm_rms_epsilon": (FLOAT32, c.norm_eps),
        "llama.rope.freq_base": (FLOAT32, c.rope_theta),
        "llama.rope.dimension_count": (UINT32, c.head_dim),
        "llama.vocab_size": (UINT32, c.vocab_size),
    }
    if dtype == "q8_0":
        metadata["general.quantization_version"] = (UINT32, 2)
    if c.rope_scaling is not None and c.rope_scaling["rope_type"] == "linear":
        metadata["llama.rope.scaling.type"] = (STRING, "linear")
        metadata["llama.rope.scaling.factor"] = (FLOAT32, c.rope_scaling["factor"])
    return metadata


def rope_freq_factors(config):
    """The rope_freqs.weight tensor for llama3 / freq_factors scaling (None otherwise): the
    divisor of each base frequency, which is how llama.cpp reads LLaMA 3.1's scaling."""
    scaling = config.rope_scaling
    if scaling is None or scaling["rope_type"] == "linear":
        return None
    if scaling["rope_type"] == "freq_factors":
        return np.asarray(scaling["factors"], np.float32)
    base = 1.0 / config.rope_theta ** (np.arange(0, config.head_dim, 2) / config.head_dim)
    return (base / scaled_frequencies(base, scaling)).astype(np.float32)


def merges_from_ranks(ranks):
    """The merge (left, right) that makes each multi-byte token of a rank table, by rank."""
    merges = []
    for piece, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(piece) < 2:
            continue
        parts = [piece[i:i + 1] for i in range(len(piece))]
        while len(parts) > 2:
            best = None
            for i in range(len(parts) - 1):
                merged_rank = ranks.get(parts[i] + parts[i + 1])
                if merged_rank is not None and merged_rank < rank and (
                        best is None or merged_rank < best[0]):
                    best = (merged_rank, i)
            if best is None:
                break
            i = best[1]
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        if len(parts) != 2:
            raise ValueError(f"token {piece!r} (rank {rank}) is not the merge of two tokens "
                             "ranked below it: cannot be written as a merges list")
        merges.append(parts)
    return merges


def _printable(piece):
    return "".join(BYTE_TO_UNICODE[byte] for byte in piece)


def tokenizer_metadata(tokenizer):
    if isinstance(tokenizer, BPETokenizer):
        if tokenizer.pattern not in PRE_NAMES:
            raise ValueError("GGUF names its split patterns; ours is neither LLaMA 3's nor "
                             "GPT-2's, so llama.cpp could not reproduce it")
        tokens = [None] * tokenizer.vocab_size
        types = [NORMAL] * tokenizer.vocab_size
        for piece, rank in tokenizer.ranks.items():
            tokens[rank] = _printable(piece)
        for text, token_id in tokenizer.special_tokens.items():
            tokens[token_id], types[token_id] = text, CONTROL
        merges = [f"{_printable(a)} {_printable(b)}" for a, b in
                  merges_from_ranks(tokenizer.ranks)]
        metadata = {"tokenizer.ggml.model": (STRING, "gpt2"),
                    "tokenizer.ggml.pre": (STRING, PRE_NAMES[tokenizer.pattern]),
                    "tokenizer.ggml.tokens": (ARRAY, (STRING, tokens)),
                    "tokenizer.ggml.token_type": (ARRAY, (INT32, types)),
                    "tokenizer.ggml.merges": (ARRAY, (STRING, merges)),
                    "tokenizer.ggml.add_bos_token": (BOOL, True)}
        for key, name in (("bos", "<|begin_of_text|>"), ("eos", "<|end_of_text|>")):
            if name in tokenizer.special_tokens:
                metadata[f"tokenizer.ggml.{key}_token_id"] = (UINT32,
                                                              tokenizer.special_tokens[name])
        return metadata
    if isinstance(tokenizer, Llama2cTokenizer):
        try:
            tokens = [piece.decode("utf-8").replace(" ", SPACE_MARK)
                      for piece in tokenizer.pieces]
        except UnicodeDecodeError:
            raise ValueError("a piece of this tokenizer.bin is not UTF-8 text; GGUF needs "
                             "text tokens") from None
        types = [UNKNOWN, CONTROL, CONTROL] + [BYTE] * 256
        types += [NORMAL] * (len(tokens) - len(types))
        return {"tokenizer.ggml.model": (STRING, "llama"),
                "tokenizer.ggml.tokens": (ARRAY, (STRING, tokens)),
                "tokenizer.ggml.scores": (ARRAY, (FLOAT32, tokenizer.scores)),
                "tokenizer.ggml.token_type": (ARRAY, (INT32, types)),
                "tokenizer.ggml.bos_token_id": (UINT32, 1),
                "tokenizer.ggml.eos_token_id": (UINT32, 2),
                "tokenizer.ggml.unknown_token_id": (UINT32, 0),
                "tokenizer.ggml.add_bos_token": (BOOL, True),
                "tokenizer.ggml.add_space_prefix": (BOOL, True)}
    if isinstance(tokenizer, MergesBPETokenizer) and tokenizer.kind == "byte_level":
        return _merges_tokenizer_metadata(tokenizer)
    raise ValueError(f"cannot write a {type(tokenizer).__name__} into GGUF (we write our "
                     "BPETokenizer, llama2.c's tokenizer and byte-level vocab + merges BPE)")


def _merges_tokenizer_metadata(tokenizer):
    """A byte-level vocab + merges tokenizer (from a GGUF file or a tokenizer.json) as a
    gpt2 vocabulary, if its split patterns are ones llama.cpp knows by name."""
    patterns = [pattern.pattern for pattern in tokenizer.split_patterns]
    names = [name for name, known in PRE_SPLITS.items() if known == patterns]
    if not names:
        raise ValueError("this tokenizer's split patterns have no GGUF pre-tokenizer name")
    tokens = [tokenizer.token_of_id[i] for i in range(tokenizer.vocab_size)]
    types = [CONTROL if token in tokenizer.special else
             USER_DEFINED if token in tokenizer.added_tokens else NORMAL for token in tokens]
    merges = sorted(tokenizer.merge_rank.items(), key=lambda item: item[1])
    metadata = {"tokenizer.ggml.model": (STRING, "gpt2"),
                "tokenizer.ggml.pre": (STRING, names[0]),
                "tokenizer.ggml.tokens": (ARRAY, (STRING, tokens)),
                "tokenizer.ggml.token_type": (ARRAY, (INT32, types)),
                "tokenizer.ggml.merges": (ARRAY, (STRING, [f"{a} {b}" for (a, b), _ in merges])),
                "tokenizer.ggml.add_bos_token": (BOOL, bool(tokenizer.add_bos))}
    for key, value in (("bos", tokenizer.bos_id), ("eos", tokenizer.eos_id),
                       ("unknown", tokenizer.unk_id)):
        if value is not None:
            metadata[f"tokenizer.ggml.{key}_token_id"] = (UINT32, value)
    return metadata


def _stored_type(dtype, value):
    if value.ndim == 1 or dtype == "f32":
        return "F32"
    if dtype == "q8_0" and value.shape[-1] % 32:
        return "F16"  # rows that are not whole Q8_0 blocks
    return DTYPES[dtype]


def _stored_bytes(value, type_name):
    """The tensor in `type_name`, a few million values at a time (yields bytes)."""
    rows = value.reshape(len(value), -1) if value.ndim > 1 else value.reshape(1, -1)
    step = max(1, CHUNK_ELEMENTS // rows.shape[1])
    for start in range(0, len(rows), step):
        chunk = rows[start:start + step]
        if type_name == "Q8_0":
            yield quantize_q8_0(chunk).tobytes()
        else:
            yield np.ascontiguousarray(chunk, "<f4" if type_name == "F32" else "<f2").tobytes()


def write_gguf(model, path, dtype="f32", tokenizer=None, name="tinyllama_np model"):
    """Write `model` (and `tokenizer`, if given) as a GGUF llama file, atomically."""
    if dtype not in DTYPES:
        raise ValueError(f"GGUF weights are written as {', '.join(DTYPES)}, not {dtype!r}")
    config = model.config
    metadata = model_metadata(config, dtype, name)
    if tokenizer is not None:
        if tokenizer.vocab_size > config.vocab_size:
            raise ValueError(f"the tokenizer has {tokenizer.vocab_size} tokens but the model "
                             f"{config.vocab_size}")
        metadata.update(tokenizer_metadata(tokenizer))
        template = getattr(tokenizer, "chat_template", None)
        if template:
            metadata["tokenizer.chat_template"] = (STRING, template)
    tensors = [(theirs, model.params[ours]) for theirs, ours in
               gguf_tensor_names(config).items()]
    factors = rope_freq_factors(config)
    if factors is not None:
        tensors.insert(0, (ROPE_FREQS, factors))
    header = [MAGIC, struct.pack("<IQQ", 3, len(tensors), len(metadata))]
    for key, (kind, value) in metadata.items():
        header += [_string(key), struct.pack("<I", kind), _value(kind, value)]
    offset, layout = 0, []
    for tensor_name, value in tensors:
        type_name = _stored_type(dtype, value)
        size = tensor_bytes(type_name, value.size)
        header += [_string(tensor_name), struct.pack("<I", value.ndim),
                   struct.pack(f"<{value.ndim}Q", *reversed(value.shape)),
                   struct.pack("<IQ", TYPE_IDS[type_name], offset)]
        layout.append((value, type_name, size))
        offset += size + (-size % DEFAULT_ALIGNMENT)
    header = b"".join(header)
    with atomic_write(path) as file:
        file.write(header + bytes(-len(header) % DEFAULT_ALIGNMENT))
        for value, type_name, size in layout:
            for part in _stored_bytes(value, type_name):
                file.write(part)
            file.write(bytes(-size % DEFAULT_ALIGNMENT))
    return path

