"""load_checkpoint / save_checkpoint: which format is this, and which reader or writer.

The format is recognised from the content, not the file name:

    a folder with config.json              Hugging Face LLaMA folder
    a folder with model.npz                a training output folder: its model.npz
    starts with b"GGUF"                    llama.cpp's GGUF (weights, tokenizer, chat template)
    starts with b"PK"                      zip, so .npz (ours)
    starts with the uint32 0x616b3432      llama2.c, versioned header ("ak42")
    8-byte length, then "{"                a .safetensors file (config.json must sit beside it)
    starts with "{"                        JSON: a config.json (or shard index); its folder
    anything else                          llama2.c legacy (no magic: 7 int32, checked hard)
"""

import os
import struct

import numpy as np

from .files import file_error
from .gguf import MAGIC as GGUF_MAGIC
from .gguf import read_gguf_model
from .gguf_write import write_gguf
from .huggingface import read_huggingface, save_huggingface
from .llama2c import MAGIC, read_llama2c, write_llama2c
from .npz import read_npz, save_npz
from .tensors import build_model

FORMATS = ("npz", "llama2c", "llama2c-v1", "hf", "gguf")
TRAINING_OUTPUT_FILE = "model.npz"


def checkpoint_format(path):
    """One of FORMATS, from what `path` contains. Raises ValueError if none fits."""
    path = os.fspath(path)
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "config.json")):
            return "hf"
        if os.path.exists(os.path.join(path, TRAINING_OUTPUT_FILE)):
            return "npz"
        raise file_error(path, "a folder, but neither a Hugging Face model (no config.json) "
                               f"nor a training output folder (no {TRAINING_OUTPUT_FILE})")
    with open(path, "rb") as file:
        head = file.read(16)
    if not head:
        raise file_error(path, "the file is empty")
    if head.startswith(GGUF_MAGIC):
        return "gguf"
    if head.startswith(b"PK"):
        return "npz"
    if len(head) >= 4 and struct.unpack("<I", head[:4])[0] == MAGIC:
        return "llama2c-v1"
    if (len(head) >= 9 and head[8:9] == b"{"
            and struct.unpack("<Q", head[:8])[0] <= os.path.getsize(path) - 8):
        return "hf"  # a .safetensors file
    if head.lstrip()[:1] == b"{":
        return "hf"  # a JSON file: config.json or the shard index
    return "llama2c"


def load_checkpoint(path, dtype=np.float32):
    """A Llama with the weights of the checkpoint at `path` (any of FORMATS), in `dtype`.

    Large files are memory-mapped and converted a slice at a time, so loading needs little
    more memory than the model itself. Bad or damaged files raise ValueError naming the file.
    """
    path = os.fspath(path)
    form = checkpoint_format(path)
    if form == "npz":
        if os.path.isdir(path):
            path = os.path.join(path, TRAINING_OUTPUT_FILE)
        config, tensors = read_npz(path)
    elif form == "hf":
        config, tensors = read_huggingface(path)
    elif form == "gguf":
        config, tensors = read_gguf_model(path)
    else:
        config, tensors = read_llama2c(path)
    return build_model(config, tensors, dtype, path)


def save_checkpoint(model, path, format="npz", dtype=None, tokenizer=None):
    """Write `model` to `path` in `format`; returns the path written.

    npz         one file (our format, config inside); into an existing folder: FOLDER/model.npz.
                dtype: float16/float32/float64, default the model's.
    llama2c     llama2.c's legacy .bin (what run.c reads), float32.
    llama2c-v1  llama2.c's versioned .bin (version 1), float32.
    hf          a Hugging Face LLaMA folder (config.json + model.safetensors), created if
                needed. dtype: float32 (default), bfloat16 or float16.
    gguf        llama.cpp's GGUF file. dtype: "f32" (default, or float32), "f16" (float16)
                or "q8_0"; `tokenizer` (ours or llama2.c's) is stored inside when given.
    Every file is written to a temporary name and renamed when complete.
    """
    path = os.fspath(path)
    if format == "gguf":
        names = {None: "f32", "float32": "f32", "float16": "f16"}
        if dtype is not None and not isinstance(dtype, str):
            dtype = _dtype_name(dtype)  # np.float16 -> "float16"
        write_gguf(model, path, names.get(dtype, dtype), tokenizer)
        return path
    if tokenizer is not None:
        raise ValueError(f"format {format!r} does not store a tokenizer (gguf does)")
    dtype = None if dtype is None else _dtype_name(dtype)
    if format == "npz":
        if os.path.isdir(path):
            path = os.path.join(path, TRAINING_OUTPUT_FILE)
        save_npz(model, path, dtype)
    elif format in ("llama2c", "llama2c-v1"):
        if dtype not in (None, "float32"):
            raise ValueError(f"llama2.c files hold float32 weights, not {dtype}")
        write_llama2c(model, path, version=0 if format == "llama2c" else 1)
    elif format == "hf":
        save_huggingface(model, path, dtype or "float32")
    else:
        raise ValueError(f"unknown checkpoint format {format!r}; choose from "
                         f"{', '.join(FORMATS)}")
    return path


def _dtype_name(dtype):
    """"float32", "bfloat16", ... from a NumPy dtype or a name (NumPy has no bfloat16)."""
    if dtype == "bfloat16":
        return dtype
    try:
        return np.dtype(dtype).name
    except TypeError:
        raise ValueError(f"unknown dtype {dtype!r}") from None
