"""Our own format: a .npz file (a zip archive of .npy arrays), config included.

    layers.0.attention.wq.weight.npy   ...   one member per parameter, Meta's names
    __config__.npy                      the LlamaConfig as JSON text, in a uint8 array

It is what `np.savez` writes, so `np.load("model.npz")` opens it too. Members are stored
uncompressed, which lets us memory-map each array straight out of the zip file instead of
reading it; we still check every member's CRC-32 checksum, as zipfile would, so a damaged
file is an error rather than silently different weights. Nothing is ever unpickled.
"""

import io
import json
import math
import struct
import zipfile
import zlib
from dataclasses import fields

import numpy as np

from ..models import LlamaConfig
from ..atomic import atomic_write
from .files import file_error, map_file, read_bytes
from .tensors import StoredTensor, check_tensor_count, make_config, param_shapes

CONFIG_MEMBER = "__config__"
FORMAT_NAME = "tinyllama_np"
FORMAT_VERSION = 1
STORED = {np.dtype("<f2"): "F16", np.dtype("<f4"): "F32", np.dtype("<f8"): "F64"}
MAX_CONFIG_BYTES = 1 << 20
LOCAL_HEADER = struct.Struct("<4s5H3I2H")  # a zip member's local header, 30 bytes
NPY_HEADER_MAX_BYTES = 1 << 16


def config_to_json(config):
    """The config as JSON text (plain ints, floats and bools)."""
    values = {}
    for field in fields(config):
        value = getattr(config, field.name)
        values[field.name] = value if field.name == "rope_scaling" else \
            bool(value) if isinstance(value, (bool, np.bool_)) else \
            float(value) if field.name in ("norm_eps", "rope_theta") else int(value)
    return json.dumps({"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                       "config": values}, indent=1)


def config_from_json(text, path):
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise file_error(path, f"the stored config is not valid JSON: {error}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise file_error(path, f"the stored config does not say format {FORMAT_NAME!r}")
    if document.get("format_version") != FORMAT_VERSION:
        raise file_error(path, f"format_version {document.get('format_version')!r}; this "
                               f"version of tinyllama_np reads {FORMAT_VERSION}")
    values = document.get("config")
    if not isinstance(values, dict):
        raise file_error(path, "the stored config has no 'config' object")
    unknown = set(values) - {field.name for field in fields(LlamaConfig)}
    if unknown:
        raise file_error(path, f"the stored config has unknown fields {sorted(unknown)}")
    for name, value in values.items():
        wanted = (dict, type(None)) if name == "rope_scaling" else \
            (bool,) if name == "tie_embeddings" else \
            (int, float) if name in ("norm_eps", "rope_theta") else (int,)
        if not isinstance(value, wanted) or (bool not in wanted and isinstance(value, bool)):
            raise file_error(path, f"config field {name} = {value!r} has the wrong type")
    try:
        return make_config(path, **values)
    except TypeError as error:  # a required field is missing
        raise file_error(path, f"the stored config is incomplete: {error}") from None


def save_npz(model, path, dtype=None):
    """Write `model` (weights in `dtype`, default the model's) and its config to `path`."""
    if dtype == "bfloat16":
        raise ValueError("npz checkpoints cannot store bfloat16 (NumPy has no such dtype)")
    dtype = np.dtype(model.dtype if dtype is None else dtype).newbyteorder("<")
    if dtype not in STORED:
        raise ValueError(f"npz checkpoints store float16, float32 or float64, not {dtype}")
    config_bytes = np.frombuffer(config_to_json(model.config).encode(), dtype=np.uint8)
    arrays = [(CONFIG_MEMBER, config_bytes)]
    arrays += [(name, value) for name, value in model.params.items()]
    with atomic_write(path) as file:
        with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, value in arrays:
                if name != CONFIG_MEMBER:
                    value = np.ascontiguousarray(value, dtype=dtype)
                with archive.open(name + ".npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, value, allow_pickle=False)


def _zip_members(path):
    """name -> ZipInfo, with the zip's structural errors turned into ValueErrors."""
    try:
        with zipfile.ZipFile(path) as archive:
            return {info.filename: info for info in archive.infolist()}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, struct.error,
            UnicodeDecodeError, NotImplementedError) as error:
        raise file_error(path, f"not a readable npz (zip) file: {error}") from None


def _member_array(data, info, path):
    """A memory-mapped view of one .npy member, after checking its zip and npy headers
    against the file and its checksum against its bytes."""
    name = info.filename
    if info.compress_type != zipfile.ZIP_STORED:
        raise file_error(path, f"member {name} is compressed; we read npz files written "
                               "uncompressed (np.savez, save_checkpoint), which can be mapped")
    local = LOCAL_HEADER.unpack(read_bytes(data, info.header_offset, LOCAL_HEADER.size, path,
                                           f"the zip header of {name}"))
    if local[0] != b"PK\x03\x04":
        raise file_error(path, f"the zip header of member {name} is damaged")
    start = info.header_offset + LOCAL_HEADER.size + local[-2] + local[-1]
    if start + info.file_size > len(data):
        raise file_error(path, f"member {name} extends past the end of the file: truncated")
    if zlib.crc32(data[start:start + info.file_size]) != info.CRC:
        raise file_error(path, f"member {name} fails its CRC-32 check: the file is corrupt")
    member = data[start:start + min(info.file_size, NPY_HEADER_MAX_BYTES)].tobytes()
    try:
        header = io.BytesIO(member)
        version = np.lib.format.read_magic(header)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(header)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(header)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except ValueError as error:
        raise file_error(path, f"member {name} is not a valid .npy array: {error}") from None
    if fortran_order or dtype.hasobject:
        raise file_error(path, f"member {name} is not a plain C-ordered numeric array")
    data_start = start + header.tell()
    nbytes = math.prod(shape) * dtype.itemsize
    if header.tell() + nbytes != info.file_size:
        raise file_error(path, f"member {name}: its .npy header describes {nbytes} bytes of "
                               f"data, the zip member holds {info.file_size - header.tell()}")
    return data[data_start:data_start + nbytes].view(dtype).reshape(shape)


def read_npz(path):
    """(config, tensors) from one of our .npz checkpoints."""
    data = map_file(path)
    members = _zip_members(path)
    if CONFIG_MEMBER + ".npy" not in members:
        raise file_error(path, f"no {CONFIG_MEMBER} in this npz: not a checkpoint written by "
                               "tinyllama_np (weights alone do not say the model's shape)")
    config_info = members.pop(CONFIG_MEMBER + ".npy")
    if config_info.file_size > MAX_CONFIG_BYTES:
        raise file_error(path, "the stored config is implausibly large")
    config_array = _member_array(data, config_info, path)
    if config_array.dtype != np.uint8 or config_array.ndim != 1:
        raise file_error(path, "the stored config is not JSON text in a uint8 array")
    config = config_from_json(config_array.tobytes().decode("utf-8", "replace"), path)
    check_tensor_count(config, len(members), path)
    expected = param_shapes(config)
    tensors = {}
    for member_name, info in members.items():
        name = member_name.removesuffix(".npy")
        if name not in expected:
            raise file_error(path, f"unexpected member {member_name}")
        array = _member_array(data, info, path)
        if array.dtype not in STORED:
            raise file_error(path, f"{name} has dtype {array.dtype}; we read float16/32/64")
        tensors[name] = StoredTensor(array, STORED[array.dtype])
    return config, tensors
