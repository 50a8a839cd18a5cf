"""llama2.c's .bin checkpoints: a few integers, then every weight as float32, back to back.

Two layouts exist (both little-endian, as written by llama2.c's export.py):

legacy ("version 0", what run.c reads):
    7 x int32   dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
                (a NEGATIVE vocab_size means the output classifier is NOT shared with the
                token embedding: its weights follow at the very end)
    float32     token embedding                  (vocab_size, dim)
                attention_norm of every layer    (n_layers, dim)
                wq of every layer, then wk, wv, wo
                ffn_norm of every layer
                w1 of every layer, then w2, w3
                final norm                       (dim,)
                RoPE cos table, sin table        (seq_len, head_dim / 2) each: not weights,
                                                 and ignored (run.c recomputes them)
                output (only when not shared)    (vocab_size, dim)

version 1:
    uint32 magic 0x616b3432 ("ak42"), int32 version = 1, the same 7 int32 (vocab_size
    positive), uint8 shared_classifier, zero padding up to byte 256; then float32
    every attention_norm, every ffn_norm, final norm, token embedding,
    every wq, wk, wv, wo, w1, w2, w3 (each group over all layers), output (if not shared).

Neither layout stores norm_eps or the RoPE theta: llama2.c always uses 1e-5 and 10000.
Weight matrices are stored (out, in), like ours, so no transposes are needed.
"""

import math
import struct

import numpy as np

from ..nn import rope_rotations
from ..atomic import atomic_write
from .files import file_error, map_file, read_bytes
from .tensors import StoredTensor, count_weights, make_config, param_shapes

MAGIC = 0x616B3432  # "ak42" as a little-endian uint32: the file starts with b"24ka"
VERSION_1_HEADER_BYTES = 256
LEGACY_HEADER_BYTES = 7 * 4
NORM_EPS = 1e-5       # hard-coded in run.c
ROPE_THETA = 10000.0  # hard-coded in run.c
FLOAT32 = np.dtype("<f4")
HEADER_NAMES = ("dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size",
                "seq_len")


def per_layer(config, name):
    return [f"layers.{i}.{name}" for i in range(config.n_layers)]


def legacy_order(config):
    """(name, shape) in file order; name None marks the RoPE tables, which we skip."""
    s = param_shapes(config)
    names = ["tok_embeddings.weight"]
    for part in ("attention_norm", "attention.wq", "attention.wk", "attention.wv",
                 "attention.wo", "ffn_norm", "feed_forward.w1", "feed_forward.w2",
                 "feed_forward.w3"):
        names += per_layer(config, part + ".weight")
    names.append("norm.weight")
    order = [(name, s[name]) for name in names]
    rope_table = (config.max_seq_len, config.head_dim // 2)
    order += [(None, rope_table), (None, rope_table)]
    if not config.tie_embeddings:
        order.append(("output.weight", s["output.weight"]))
    return order


def version1_order(config):
    s = param_shapes(config)
    names = per_layer(config, "attention_norm.weight") + per_layer(config, "ffn_norm.weight")
    names += ["norm.weight", "tok_embeddings.weight"]
    for part in ("attention.wq", "attention.wk", "attention.wv", "attention.wo",
                 "feed_forward.w1", "feed_forward.w2", "feed_forward.w3"):
        names += per_layer(config, part + ".weight")
    if not config.tie_embeddings:
        names.append("output.weight")
    return [(name, s[name]) for name in names]


def _config_from_header(path, values, shared, source):
    header = dict(zip(HEADER_NAMES, values))
    for name, value in header.items():
        if value <= 0:
            raise file_error(path, f"{source}: field {name} = {value} must be positive "
                                   f"(header {header})")
    return make_config(path, source, vocab_size=header["vocab_size"], dim=header["dim"],
                       n_layers=header["n_layers"], n_heads=header["n_heads"],
                       n_kv_heads=header["n_kv_heads"], hidden_dim=header["hidden_dim"],
                       max_seq_len=header["seq_len"], norm_eps=NORM_EPS,
                       rope_theta=ROPE_THETA, tie_embeddings=shared)


def _check_size(data, path, config, header_bytes, extra_floats=0):
    """The file holds exactly the header and the config's weights: checked by arithmetic
    before any per-tensor list is built (a corrupt n_layers could make that list huge)."""
    expected = header_bytes + 4 * (count_weights(config) + extra_floats)
    if expected != len(data):
        raise file_error(path, f"the llama2.c header describes a file of {expected} bytes, "
                               f"but it has {len(data)}: truncated, corrupt, or not llama2.c")


def _map_weights(data, start, order):
    """StoredTensor views of the float32 tensors listed in `order`, from byte `start` on."""
    tensors = {}
    offset = start
    for name, shape in order:
        size = math.prod(shape)
        if name is not None:
            view = data[offset:offset + 4 * size].view(FLOAT32).reshape(shape)
            tensors[name] = StoredTensor(view, "F32")
        offset += 4 * size
    return tensors


def read_llama2c(path):
    """(config, tensors) from a llama2.c .bin file, legacy or version 1."""
    data = map_file(path)
    first = struct.unpack("<I", read_bytes(data, 0, 4, path, "the header"))[0]
    if first == MAGIC:
        return _read_version1(data, path)
    values = struct.unpack("<7i", read_bytes(data, 0, LEGACY_HEADER_BYTES, path,
                                             "the llama2.c header"))
    vocab_size = values[5]
    shared = vocab_size > 0
    values = values[:5] + (abs(vocab_size),) + values[6:]
    # Without a magic number, anything may end up here: say what we tried.
    source = ("llama2.c legacy header (the file has no zip, safetensors, JSON or llama2.c "
              "version 1 signature, so it was read as a headerless llama2.c file)")
    config = _config_from_header(path, values, shared, source)
    rope_tables = config.max_seq_len * config.head_dim  # cos and sin, head_dim / 2 each
    _check_size(data, path, config, LEGACY_HEADER_BYTES, rope_tables)
    return config, _map_weights(data, LEGACY_HEADER_BYTES, legacy_order(config))


def _read_version1(data, path):
    header = read_bytes(data, 0, VERSION_1_HEADER_BYTES, path, "the 256-byte llama2.c header")
    version = struct.unpack_from("<i", header, 4)[0]
    if version == 2:
        raise file_error(path, "llama2.c version 2 files hold int8 (Q8_0) quantised weights, "
                               "which we do not read; re-export with llama2.c's export.py "
                               "--version 0 or 1")
    if version != 1:
        raise file_error(path, f"unknown llama2.c file version {version} (we read 0 and 1)")
    values = struct.unpack_from("<7i", header, 8)
    shared = header[36]
    if shared not in (0, 1):
        raise file_error(path, f"shared_classifier flag is {shared}, must be 0 or 1: corrupt")
    config = _config_from_header(path, values, bool(shared), "llama2.c version 1 header")
    _check_size(data, path, config, VERSION_1_HEADER_BYTES)
    return config, _map_weights(data, VERSION_1_HEADER_BYTES, version1_order(config))


def write_llama2c(model, path, version=0):
    """Write `model` as a llama2.c .bin file (version 0 = legacy, or 1), float32."""
    c = model.config
    if c.rope_scaling is not None:
        raise ValueError("llama2.c files cannot store RoPE scaling; save in another format")
    if c.norm_eps != NORM_EPS or c.rope_theta != ROPE_THETA:
        raise ValueError(f"llama2.c files cannot store norm_eps={c.norm_eps} or "
                         f"rope_theta={c.rope_theta}: llama2.c always uses {NORM_EPS} and "
                         f"{ROPE_THETA:g}; save in another format")
    values = (c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size,
              c.max_seq_len)
    if version == 0:
        if not c.tie_embeddings:
            values = values[:5] + (-c.vocab_size,) + values[6:]
        header = struct.pack("<7i", *values)
        order = legacy_order(c)
    elif version == 1:
        header = struct.pack("<Ii7iB", MAGIC, 1, *values, int(c.tie_embeddings))
        header += bytes(VERSION_1_HEADER_BYTES - len(header))
        order = version1_order(c)
    else:
        raise ValueError(f"llama2.c version must be 0 (legacy) or 1, got {version!r}")
    rotations = rope_rotations(c.head_dim, c.max_seq_len, ROPE_THETA)
    rope_tables = iter([rotations.real, rotations.imag])  # what export.py writes: cos, sin
    with atomic_write(path) as file:
        file.write(header)
        for name, _ in order:
            tensor = next(rope_tables) if name is None else model.params[name]
            file.write(np.ascontiguousarray(tensor, dtype=FLOAT32))
