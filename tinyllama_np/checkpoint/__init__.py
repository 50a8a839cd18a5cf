"""Checkpoints: load and save our .npz, llama2.c's .bin, Hugging Face folders and GGUF.

    model = tl.load_checkpoint("stories15M.bin")            # format recognised by content
    tl.save_checkpoint(model, "tiny_hf", format="hf")        # npz | llama2c | llama2c-v1 | hf | gguf

One file per idea:
    formats.py       detection by content; load_checkpoint / save_checkpoint
    files.py         memory-mapping, size checks, atomic writes
    tensors.py       stored tensor -> model weight (bfloat16 decoding, shape checks)
    npz.py           ours: np.savez-compatible zip of .npy arrays with the config inside
    llama2c.py       llama2.c .bin, legacy and version 1
    safetensors.py   the safetensors file format, by hand
    huggingface.py   Hugging Face LLaMA folders: config.json, names, RoPE row order, shards
    gguf.py          llama.cpp's GGUF llama files: the config, names, weights (the container
                     itself, header / metadata / tensor infos, is ../gguf_file.py)
    gguf_quants.py   GGUF's tensor types: ggml's quantisation blocks, expanded vectorised
    gguf_write.py    writing GGUF (f32 / f16 / q8_0, with a tokenizer inside)

The `tinyllama-np convert` command is in cli/convert.py.
"""

from .formats import FORMATS, checkpoint_format, load_checkpoint, save_checkpoint
from .huggingface import rope_row_order
from .safetensors import read_safetensors, write_safetensors
