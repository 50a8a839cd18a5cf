"""GGUF, llama.cpp's file format: the container (header, metadata, tensor infos), by hand.

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

This file knows the container only; both stages that read GGUF use it: checkpoint/gguf.py
(the model: config, weights) and tokenizer/gguf_vocab.py (the tokenizer). Like every
reader here it memory-maps the file and checks each size against the file's real size
before reading or allocating anything.
"""

import math
import os
import struct

import numpy as np

MAGIC = b"GGUF"
VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_ARRAY_DEPTH = 8

# Metadata value types: id -> (name, struct format of a scalar, or None).
VALUE_TYPES = {0: ("UINT8", "<B"), 1: ("INT8", "<b"), 2: ("UINT16", "<H"), 3: ("INT16", "<h"),
               4: ("UINT32", "<I"), 5: ("INT32", "<i"), 6: ("FLOAT32", "<f"), 7: ("BOOL", "<?"),
               8: ("STRING", None), 9: ("ARRAY", None), 10: ("UINT64", "<Q"),
               11: ("INT64", "<q"), 12: ("FLOAT64", "<d")}
UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY = 4, 5, 6, 7, 8, 9  # the ones the writer uses
NUMPY_TYPES = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4",
               7: "<u1", 10: "<u8", 11: "<i8", 12: "<f8"}

# Tensor types: GGUF type id -> (name, weights per block, bytes per block). The block
# layouts, and how each expands to float32, are in checkpoint/gguf_quants.py.
TENSOR_TYPES = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    30: ("BF16", 1, 2),
}
TYPE_IDS = {name: type_id for type_id, (name, _, _) in TENSOR_TYPES.items()}


def file_error(path, message):
    """A ValueError whose message starts with the file it is about."""
    return ValueError(f"{os.fspath(path)}: {message}")


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
    if os.path.getsize(path) == 0:  # mmap cannot map an empty file
        raise file_error(path, "the file is empty")
    data = np.memmap(path, dtype=np.uint8, mode="r")
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
