"""From tensors as they lie in a file to a Llama: the part every format shares.

Each format's reader returns a LlamaConfig and a dict of StoredTensor (Meta names, e.g.
"layers.0.attention.wq.weight"), each a view of the memory-mapped file. `build_model` then
checks the names and shapes against the config, allocates the model (without random
initialisation) and copies each tensor in, converting to the model's dtype a slice at a time.
"""

import math
from dataclasses import dataclass

import numpy as np

from ..models import Llama, LlamaConfig
from .files import file_error

# The RoPE table has one row per position; a corrupt header claiming 2**31 positions must not
# make us allocate it. 2**20 is beyond any LLaMA released so far.
MAX_POSITIONS = 1 << 20

# Conversion works on slices of about this many elements, so its temporaries stay small.
CHUNK_ELEMENTS = 1 << 22

# How each dtype lies in a file (names as in safetensors). Every format here is
# little-endian. NumPy has no bfloat16, so BF16 is kept as its raw 16-bit patterns.
STORED_DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2")}


def bfloat16_to_float32(bits):
    """bfloat16 is the upper half of a float32 (sign, the same 8-bit exponent, 7 of the 23
    mantissa bits), so moving its 16 bits up and filling zeros below is exact."""
    return np.left_shift(bits, 16, dtype=np.uint32).view(np.float32)


def float32_to_bfloat16(values):
    """The bfloat16 bit patterns (uint16) nearest to `values`, ties to even, as PyTorch does.

    Adding 0x7FFF plus the lowest kept bit before cutting the lower 16 bits rounds to nearest,
    with ties going to the even neighbour. NaN is kept a (quiet) NaN.
    """
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(values)
    if nan.any():
        rounded[nan] = ((bits[nan] >> 16) | 0x0040).astype(np.uint16)
    return rounded


@dataclass
class StoredTensor:
    """A tensor as it lies in a file: not yet converted, not yet copied.

    data: a view of the (memory-mapped) file with the stored shape; for BF16, uint16 bits.
    dtype: "F32", "F16", "BF16" (or "F64", in our npz files).
    row_order: None, or the destination row of each stored row (Hugging Face stores the rows
        of wq and wk in another order; see huggingface.py).
    """
    data: np.ndarray
    dtype: str
    row_order: np.ndarray = None

    @property
    def shape(self):
        return self.data.shape

    def copy_into(self, destination):
        """destination[...] = this tensor, converted, a few million elements at a time."""
        row_size = max(1, math.prod(self.data.shape[1:]))
        step = max(1, CHUNK_ELEMENTS // row_size)
        for start in range(0, len(self.data), step):
            values = self.data[start:start + step]
            if self.dtype == "BF16":
                values = bfloat16_to_float32(values)
            rows = slice(start, start + step) if self.row_order is None else \
                self.row_order[start:start + step]
            destination[rows] = values


def param_shapes(config):
    """Every parameter's name and shape for `config`, in the order of Llama.params."""
    c = config
    q_rows, kv_rows = c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim
    shapes = {"tok_embeddings.weight": (c.vocab_size, c.dim)}
    for i in range(c.n_layers):
        layer = f"layers.{i}."
        shapes[layer + "attention_norm.weight"] = (c.dim,)
        shapes[layer + "attention.wq.weight"] = (q_rows, c.dim)
        shapes[layer + "attention.wk.weight"] = (kv_rows, c.dim)
        shapes[layer + "attention.wv.weight"] = (kv_rows, c.dim)
        shapes[layer + "attention.wo.weight"] = (c.dim, q_rows)
        shapes[layer + "ffn_norm.weight"] = (c.dim,)
        shapes[layer + "feed_forward.w1.weight"] = (c.hidden_dim, c.dim)
        shapes[layer + "feed_forward.w2.weight"] = (c.dim, c.hidden_dim)
        shapes[layer + "feed_forward.w3.weight"] = (c.hidden_dim, c.dim)
    shapes["norm.weight"] = (c.dim,)
    if not c.tie_embeddings:
        shapes["output.weight"] = (c.vocab_size, c.dim)
    return shapes


def count_weights(config):
    """The number of weights of `config`, by arithmetic: no per-layer lists, so a corrupt
    header claiming a million layers costs nothing to check against the file's size."""
    c = config
    q_size, kv_size = c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim
    per_layer = 2 * c.dim + 2 * q_size * c.dim + 2 * kv_size * c.dim + 3 * c.hidden_dim * c.dim
    embeddings = c.vocab_size * c.dim * (1 if c.tie_embeddings else 2)
    return embeddings + c.n_layers * per_layer + c.dim


def check_tensor_count(config, stored_count, path):
    """Each layer has 9 tensors: a config with more layers than the file could hold is
    refused before per-layer name lists are built (a corrupt n_layers of a billion would
    make them huge). Smaller mismatches are reported by name later."""
    if 9 * config.n_layers > stored_count:
        raise file_error(path, f"the configuration's {config.n_layers} layers need at least "
                               f"{9 * config.n_layers} tensors, but the file holds "
                               f"{stored_count}")


def make_config(path, source="model configuration", **fields):
    """LlamaConfig(**fields), its complaints prefixed with the file (and the part of it,
    `source`) they came from."""
    try:
        config = LlamaConfig(**fields)
    except ValueError as error:
        raise file_error(path, f"invalid {source}: {error}") from None
    if config.max_seq_len > MAX_POSITIONS:
        raise file_error(path, f"max_seq_len {config.max_seq_len} is larger than the "
                               f"{MAX_POSITIONS} positions we accept: corrupt?")
    return config


def check_tensors(config, tensors, path):
    """The tensors are exactly the parameters of `config`, with the right shapes."""
    expected = param_shapes(config)
    missing = [name for name in expected if name not in tensors]
    unexpected = [name for name in tensors if name not in expected]
    if missing:
        raise file_error(path, f"{len(missing)} tensors are missing, e.g. {missing[0]}")
    if unexpected:
        raise file_error(path, f"unexpected tensors, e.g. {unexpected[0]}")
    for name, shape in expected.items():
        if tuple(tensors[name].shape) != shape:
            raise file_error(path, f"{name} has shape {tuple(tensors[name].shape)}, but the "
                                   f"configuration needs {shape}")


def build_model(config, tensors, dtype, path):
    """A Llama of `config` and `dtype` holding the weights of `tensors`.

    Shapes are checked first; only then is the model allocated (without random
    initialisation: every weight is overwritten) and filled in place.
    """
    check_tensors(config, tensors, path)
    model = Llama(config, dtype=dtype, random_init=False)
    for name, tensor in tensors.items():
        tensor.copy_into(model.params[name])
    return model
