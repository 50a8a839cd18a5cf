"""GGUF, llama.cpp's file format, parsed by hand: metadata, tensor infos, then the tensors.

    "GGUF"                  4 bytes of magic
    uint32 version          2 or 3 (version 1 used 32-bit counts and is not read)
    uint64 tensor_count, uint64 metadata_count
    metadata_count x        key (string), uint32 value type, value
    tensor_count x          name (string), uint32 n_dims, n_dims x uint64 dims,
                            uint32 tensor type, uint64 offset (from the start of the data)
    padding                 to a multiple of general.alignment (default 32)
    tensor data             each tensor at its offset, itself a multiple of the alignment

A string is a uint64 byte length and UTF-8 bytes (no terminating zero); an array is a
uint32 element type, a uint64 count and the elements. Everything is little-endian.
Dimensions are listed fastest-varying first: a (out, in) weight matrix is stored with
dims [in, out], so we reverse them to get NumPy's C-order shape.

A self-describing file: `llama.*` keys give the model's shape (below), `tokenizer.ggml.*`
its tokenizer (tokenizer/gguf_vocab.py), `tokenizer.chat_template` its chat format.

Row order of q and k. llama.cpp's convert_hf_to_gguf.py permutes the rows of Hugging
Face's q_proj / k_proj back, so GGUF llama files hold wq and wk in Meta's order (RoPE on
interleaved pairs, llama.cpp's "rope type NORM" for the llama architecture): we load them
as they are. Checked on SmolLM2 (tests/test_gguf.py): its loss on an English text is 1.32
as stored and 2.18 with Hugging Face's order imposed, and its logits equal those of
transformers reading the same file (which permutes the rows into its own order).
"""

import math
import struct

import numpy as np

from .files import file_error, map_file
from .gguf_quants import TENSOR_TYPES, dequantize, tensor_bytes
from .tensors import CHUNK_ELEMENTS, check_tensor_count, make_config

MAGIC = b"GGUF"
VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_ARRAY_DEPTH = 8

# Metadata value types: id -> (name, struct format of a scalar, or None).
VALUE_TYPES = {0: ("UINT8", "<B"), 1: ("INT8", "<b"), 2: ("UINT16", "<H"), 3: ("INT16", "<h"),
               4: ("UINT32", "<I"), 5: ("INT32", "<i"), 6: ("FLOAT32", "<f"), 7: ("BOOL", "<?"),
               8: ("STRING", None), 9: ("ARRAY", None), 10: ("UINT64", "<Q"),
               11: ("INT64", "<q"), 12: ("FLOAT64", "<d")}
NUMPY_TYPES = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4",
               7: "<u1", 10: "<u8", 11: "<i8", 12: "<f8"}

# GGUF tensor name -> ours (after "blk.{i}." -> "layers.{i}.").
LAYER_NAMES = {
    "attn_norm.weight": "attention_norm.weight",
    "attn_q.weight": "attention.wq.weight",
    "attn_k.weight": "attention.wk.weight",
    "attn_v.weight": "attention.wv.weight",
    "attn_output.weight": "attention.wo.weight",
    "ffn_norm.weight": "ffn_norm.weight",
    "ffn_gate.weight": "feed_forward.w1.weight",
    "ffn_down.weight": "feed_forward.w2.weight",
    "ffn_up.weight": "feed_forward.w3.weight",
}
GLOBAL_NAMES = {"token_embd.weight": "tok_embeddings.weight", "output_norm.weight": "norm.weight",
                "output.weight": "output.weight"}
ROPE_FREQS = "rope_freqs.weight"  # LLaMA 3.1+: a divisor per RoPE frequency (see below)


class Reader:
    """A cursor over the file's bytes that checks every read against the file's end."""

    def __init__(self, data, path):
        self.data, self.buffer, self.path, self.position = data, memoryview(data), path, 0

    def take(self, count, what):
        if count < 0 or self.position + count > len(self.data):
            raise file_error(self.path, f"{what} at byte {self.position} needs {count} bytes, "
                                        f"but the file ends at {len(self.data)}: truncated "
                                        "or corrupt")
        start = self.position
        self.position += count
        return start

    def scalar(self, fmt, what):
        start = self.take(struct.calcsize(fmt), what)
        return struct.unpack_from(fmt, self.buffer, start)[0]

    def string(self, what):
        length = self.scalar("<Q", what)
        start = self.take(length, f"{what} ({length} bytes)")
        try:
            return bytes(self.buffer[start:start + length]).decode("utf-8")
        except UnicodeDecodeError:
            raise file_error(self.path, f"{what} at byte {start} is not UTF-8") from None

    def value(self, type_id, what, depth=0):
        if type_id not in VALUE_TYPES:
            raise file_error(self.path, f"{what} has unknown value type {type_id} at byte "
                                        f"{self.position - 4}")
        name, fmt = VALUE_TYPES[type_id]
        if name == "FLOAT32":
            # The shortest decimal that is this float32: 1e-05, not 9.999999747378752e-06
            # (what the config held before it was stored in 32 bits).
            return float(str(np.float32(self.scalar(fmt, what))))
        if fmt is not None:
            return self.scalar(fmt, what)
        if name == "STRING":
            return self.string(what)
        element_type = self.scalar("<I", what)
        count = self.scalar("<Q", what)
        if element_type in NUMPY_TYPES:  # numbers: one view, no loop
            dtype = np.dtype(NUMPY_TYPES[element_type])
            start = self.take(count * dtype.itemsize, f"{what} ({count} numbers)")
            array = self.data[start:start + count * dtype.itemsize].view(dtype)
            return array.astype(bool) if element_type == 7 else np.array(array)
        if element_type in (8, 9):  # strings, or arrays (of arrays ...)
            # Each element needs at least its 8-byte length (a string) or 12 bytes of type
            # and count (an array): a count beyond what is left of the file is a lie.
            if count * (8 if element_type == 8 else 12) > len(self.data) - self.position:
                raise file_error(self.path, f"{what} claims {count} elements, more than the "
                                            "rest of the file can hold: corrupt")
            if depth >= MAX_ARRAY_DEPTH:
                raise file_error(self.path, f"{what}: arrays nested deeper than "
                                            f"{MAX_ARRAY_DEPTH}: corrupt?")
            return [self.value(element_type, f"{what}[{i}]", depth + 1) for i in range(count)]
        raise file_error(self.path, f"{what} is an array of unknown type {element_type}")


def read_gguf(path):
    """(metadata dict, tensor infos {name: (type name, shape, byte offset)}, mapped bytes).

    Shapes are NumPy's (dims reversed); offsets are absolute, checked to lie in the file.
    """
    data = map_file(path)
    reader = Reader(data, path)
    start = reader.take(4, "the magic")
    if bytes(data[start:start + 4]) != MAGIC:
        raise file_error(path, f"not a GGUF file (starts with {bytes(data[:4])!r}, not {MAGIC!r})")
    version = reader.scalar("<I", "the version")
    if version not in VERSIONS:
        raise file_error(path, f"GGUF version {version} is not supported (we read 2 and 3)")
    tensor_count = reader.scalar("<Q", "the tensor count")
    metadata_count = reader.scalar("<Q", "the metadata count")
    # Each metadata entry and tensor info needs at least 8 + 4 bytes: check the counts
    # against the file before looping over them.
    if 12 * (tensor_count + metadata_count) > len(data):
        raise file_error(path, f"the header claims {tensor_count} tensors and {metadata_count} "
                               f"metadata entries, more than a {len(data)}-byte file can hold")
    metadata = {}
    for index in range(metadata_count):
        key = reader.string(f"metadata key {index}")
        metadata[key] = reader.value(reader.scalar("<I", key), key)
    infos = {}
    for index in range(tensor_count):
        name = reader.string(f"tensor name {index}")
        n_dims = reader.scalar("<I", name)
        if not 1 <= n_dims <= 4:
            raise file_error(path, f"tensor {name} has {n_dims} dimensions (GGUF allows 1-4)")
        dims = [reader.scalar("<Q", name) for _ in range(n_dims)]
        type_id = reader.scalar("<I", name)
        offset = reader.scalar("<Q", name)
        if type_id not in TENSOR_TYPES:
            raise file_error(path, f"tensor {name} has type {type_id}, which we do not read "
                                   f"(we read {', '.join(t[0] for t in TENSOR_TYPES.values())})")
        if name in infos:
            raise file_error(path, f"tensor {name} is listed twice")
        infos[name] = (type_id, tuple(reversed(dims)), offset)
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment < 1 or alignment & (alignment - 1):
        raise file_error(path, f"general.alignment {alignment!r} is not a power of two")
    data_start = -(-reader.position // alignment) * alignment
    tensors = {}
    for name, (type_id, shape, offset) in infos.items():
        type_name, block_weights, block_bytes = TENSOR_TYPES[type_id]
        if shape[-1] % block_weights:
            raise file_error(path, f"tensor {name}: rows of {shape[-1]} weights are not whole "
                                   f"{type_name} blocks of {block_weights}")
        size = math.prod(shape) // block_weights * block_bytes
        begin = data_start + offset
        if offset % alignment or begin + size > len(data):
            raise file_error(path, f"tensor {name}: {size} bytes at offset {offset} lie "
                                   f"outside the file or off the {alignment}-byte alignment: "
                                   "truncated or corrupt")
        tensors[name] = (type_name, shape, begin)
    return metadata, tensors, data


class GGUFTensor:
    """A tensor as it lies in a GGUF file: raw (maybe quantised) bytes of shape `shape`."""

    def __init__(self, raw, type_name, shape):
        self.raw, self.type_name, self.shape = raw, type_name, shape

    def copy_into(self, destination):
        """destination[...] = the weights, dequantised a few million at a time."""
        rows = self.raw.reshape(self.shape[0] if len(self.shape) > 1 else 1, -1)
        step = max(1, CHUNK_ELEMENTS // max(1, math.prod(self.shape[1:])))
        flat = destination.reshape(len(rows), -1)
        for start in range(0, len(rows), step):
            chunk = rows[start:start + step]
            flat[start:start + step] = dequantize(chunk.reshape(-1), self.type_name).reshape(
                len(chunk), -1)

    def to_numpy(self):
        out = np.empty(self.shape, np.float32)
        self.copy_into(out)
        return out


def gguf_tensors(infos, data):
    """name -> GGUFTensor for the infos of read_gguf."""
    tensors = {}
    for name, (type_name, shape, begin) in infos.items():
        size = tensor_bytes(type_name, math.prod(shape))
        tensors[name] = GGUFTensor(data[begin:begin + size], type_name, shape)
    return tensors


# ---------------------------------------------------------------------------- the model

def gguf_config(metadata, tensors, path, freq_factors=None):
    """A LlamaConfig from the `llama.*` metadata (and the tensor infos, for what it may
    omit); freq_factors: the values of rope_freqs.weight, if the file has it."""
    architecture = metadata.get("general.architecture")
    if architecture != "llama":
        raise file_error(path, f"general.architecture is {architecture!r}: we load LLaMA "
                               "models only ('llama')")

    def integer(key, default=None):
        value = metadata.get("llama." + key, default)
        if value is None:
            raise file_error(path, f"the metadata lacks llama.{key}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise file_error(path, f"llama.{key} = {value!r} must be a positive integer")
        return value

    def number(key, default):
        value = metadata.get("llama." + key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise file_error(path, f"llama.{key} = {value!r} must be a positive number")
        return float(value)

    if "token_embd.weight" not in tensors:
        raise file_error(path, "there is no token_embd.weight tensor")
    dim, n_heads = integer("embedding_length"), integer("attention.head_count")
    embedding_rows = tensors["token_embd.weight"][1][0]
    head_dim = dim // n_heads if dim % n_heads == 0 else None
    for key in ("rope.dimension_count", "attention.key_length", "attention.value_length"):
        if "llama." + key in metadata and metadata["llama." + key] != head_dim:
            raise file_error(path, f"llama.{key} = {metadata['llama.' + key]!r} differs from "
                                   f"embedding_length / head_count = {dim / n_heads:g}: not "
                                   "supported")
    if metadata.get("llama.expert_count", 0):
        raise file_error(path, "a mixture-of-experts model (llama.expert_count): not supported")
    config = make_config(
        path, "GGUF llama metadata",
        vocab_size=integer("vocab_size", embedding_rows), dim=dim,
        n_layers=integer("block_count"), n_heads=n_heads,
        n_kv_heads=integer("attention.head_count_kv", n_heads),
        hidden_dim=integer("feed_forward_length"),
        max_seq_len=integer("context_length", 2048),
        norm_eps=number("attention.layer_norm_rms_epsilon", 1e-5),
        rope_theta=number("rope.freq_base", 10000.0),
        tie_embeddings="output.weight" not in tensors,
        rope_scaling=gguf_rope_scaling(metadata, freq_factors, path))
    return config


def gguf_rope_scaling(metadata, freq_factors, path):
    """RoPE scaling from GGUF: llama.rope.scaling.type (linear), or rope_freqs.weight.

    LLaMA 3.1's "llama3" scaling is stored as the tensor rope_freqs.weight: one divisor per
    frequency (head_dim / 2 of them), which is what llama3 scaling computes from its
    parameters (see nn/position.py); we keep the divisors themselves ("freq_factors").
    """
    kind = metadata.get("llama.rope.scaling.type", "none")
    if kind not in ("none", "linear"):
        raise file_error(path, f"llama.rope.scaling.type {kind!r} is not implemented (we "
                               "implement none, linear, and LLaMA 3's rope_freqs)")
    if freq_factors is not None:
        if kind != "none":
            raise file_error(path, f"both rope_freqs.weight and scaling type {kind!r}")
        return {"rope_type": "freq_factors", "factors": freq_factors.tolist()}
    if kind == "linear":
        factor = metadata.get("llama.rope.scaling.factor")
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 0:
            raise file_error(path, f"llama.rope.scaling.factor = {factor!r} must be positive")
        return {"rope_type": "linear", "factor": float(factor)}
    return None


def read_gguf_model(path):
    """(config, tensors under our names) from a GGUF llama file."""
    metadata, infos, data = read_gguf(path)
    stored = gguf_tensors(infos, data)
    freq_factors = None
    if ROPE_FREQS in stored:
        freq_factors = stored.pop(ROPE_FREQS)
        if len(freq_factors.shape) != 1 or freq_factors.shape[0] > 1 << 16:
            raise file_error(path, f"rope_freqs.weight has shape {freq_factors.shape}")
        freq_factors = freq_factors.to_numpy()
    config = gguf_config(metadata, infos, path, freq_factors)
    check_tensor_count(config, len(stored), path)
    tensors = {}
    for name, tensor in stored.items():
        ours = GLOBAL_NAMES.get(name)
        if ours is None and name.startswith("blk."):
            layer, _, rest = name[4:].partition(".")
            if layer.isdigit() and rest in LAYER_NAMES:
                ours = f"layers.{int(layer)}.{LAYER_NAMES[rest]}"
        if ours is None:
            raise file_error(path, f"unexpected tensor {name} (not a LLaMA parameter)")
        tensors[ours] = tensor
    return config, tensors
