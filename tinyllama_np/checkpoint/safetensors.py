"""The safetensors file format, parsed by hand (Hugging Face's weight files).

    8 bytes      N, the header's length: unsigned 64-bit little-endian
    N bytes      a JSON object, UTF-8, possibly padded with spaces:
                   {"model.norm.weight": {"dtype": "BF16", "shape": [2048],
                                          "data_offsets": [0, 4096]},
                    ...,
                    "__metadata__": {"format": "pt"}}     (optional, strings only)
    the rest     the tensors' raw bytes, little-endian, C order; data_offsets count from
                 the end of the header, [begin, end), and the tensors tile it exactly

A format designed to be safe to open (unlike PyTorch's pickle files, which can run code)
and cheap to memory-map: one header, then bytes exactly where the header says.
"""

import json
import math
import struct

import numpy as np

from ..atomic import atomic_write
from .files import file_error, map_file, read_bytes
from .tensors import STORED_DTYPES, StoredTensor, float32_to_bfloat16

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the reference implementation's limit too
METADATA = "__metadata__"


def read_safetensors(path):
    """name -> StoredTensor (memory-mapped views), after checking the whole header."""
    data = map_file(path)
    header_size = struct.unpack("<Q", read_bytes(data, 0, 8, path, "the header length"))[0]
    if header_size > min(MAX_HEADER_BYTES, len(data) - 8):
        raise file_error(path, f"the safetensors header claims {header_size} bytes, but the "
                               f"file has {len(data)}: truncated or not safetensors")
    try:
        header = json.loads(read_bytes(data, 8, header_size, path, "the header").decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise file_error(path, f"the safetensors header is not valid JSON: {error}") from None
    if not isinstance(header, dict):
        raise file_error(path, "the safetensors header is not a JSON object")
    header.pop(METADATA, None)
    data_start = 8 + header_size
    data_size = len(data) - data_start
    tensors, spans = {}, []
    for name, entry in header.items():
        dtype, shape, (begin, end) = _check_entry(name, entry, path)
        if not 0 <= begin <= end <= data_size:
            raise file_error(path, f"{name}: data_offsets [{begin}, {end}] lie outside the "
                                   f"{data_size} bytes of tensor data: truncated or corrupt")
        if end - begin != math.prod(shape) * STORED_DTYPES[dtype].itemsize:
            raise file_error(path, f"{name}: shape {shape} in {dtype} needs "
                                   f"{math.prod(shape) * STORED_DTYPES[dtype].itemsize} "
                                   f"bytes, data_offsets give {end - begin}")
        view = data[data_start + begin:data_start + end].view(STORED_DTYPES[dtype])
        tensors[name] = StoredTensor(view.reshape(shape), dtype)
        spans.append((begin, end, name))
    _check_tiling(spans, data_size, path)
    return tensors


def _check_entry(name, entry, path):
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise file_error(path, f"{name}: a header entry needs exactly dtype, shape and "
                               f"data_offsets, got {entry!r:.200}")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in STORED_DTYPES:
        raise file_error(path, f"{name}: dtype {dtype!r} is not supported (we read "
                               f"{', '.join(STORED_DTYPES)})")
    if not (isinstance(shape, list) and all(_is_count(n) for n in shape)):
        raise file_error(path, f"{name}: shape {shape!r:.200} is not a list of sizes")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_count, offsets))):
        raise file_error(path, f"{name}: data_offsets {offsets!r:.200} are not [begin, end]")
    return dtype, shape, offsets


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_tiling(spans, data_size, path):
    """The tensors cover the data exactly: no overlaps, no gaps, nothing left over."""
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise file_error(path, f"{name} starts at byte {begin} of the data, expected "
                                   f"{position}: tensors overlap or leave a gap (corrupt)")
        position = end
    if position != data_size:
        raise file_error(path, f"the tensors end at byte {position} of the data, but the file "
                               f"holds {data_size}: corrupt or trailing garbage")


def tensor_bytes(value, dtype):
    """`value` as the little-endian bytes of `dtype` ("F32", "F16" or "BF16")."""
    if dtype == "BF16":
        return float32_to_bfloat16(value)
    return np.ascontiguousarray(value, dtype=STORED_DTYPES[dtype])


def write_safetensors(path, tensors, dtype="F32", metadata=None):
    """Write name -> float array, every tensor converted to `dtype`, atomically."""
    if dtype not in STORED_DTYPES:
        raise ValueError(f"safetensors dtype must be one of {', '.join(STORED_DTYPES)}, "
                         f"got {dtype!r}")
    header, offset = {}, 0
    if metadata is not None:
        header[METADATA] = metadata
    for name, value in tensors.items():
        size = value.size * STORED_DTYPES[dtype].itemsize
        header[name] = {"dtype": dtype, "shape": list(value.shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    header_bytes += b" " * (-len(header_bytes) % 8)  # so the data starts 8-byte aligned
    with atomic_write(path) as file:
        file.write(struct.pack("<Q", len(header_bytes)))
        file.write(header_bytes)
        for value in tensors.values():
            file.write(tensor_bytes(value, dtype))
