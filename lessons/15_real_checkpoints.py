# %% [markdown]
# # Lesson 15: real checkpoints (检查点)
#
# Pre-training (预训练, the chapter's section 3.2.1) is the expensive part: weeks of GPUs.
# Its result is a checkpoint, a file of weights (权重). Because our model is numerically
# the same LLaMA ("Large Language Model Meta AI", a decoder-only Transformer with RMSNorm,
# RoPE and SwiGLU), it can run weights others trained, and fine-tune them (微调, 3.2.2).
#
# Three formats, all read by `tl.load_checkpoint(path)`, which recognises them by content:
#
# * ours: a .npz file (a zip of NumPy arrays) with the config inside;
# * llama2.c's .bin: seven integers, then every weight as float32, back to back;
# * a Hugging Face folder: config.json + model.safetensors (a JSON header, then raw bytes),
#   usually in bfloat16, with the rows of wq and wk in another order (section 3 below).
#
# Run:  python lessons/15_real_checkpoints.py      (offline, a few seconds)

# %%
import json
import os
import shutil
import struct
import tempfile
import time

import numpy as np

import tinyllama_np as tl
from tinyllama_np.training.optim import AdamW

rng = np.random.default_rng(0)
workdir = tempfile.mkdtemp(prefix="lesson12_")

# %% [markdown]
# ## 1. Where real checkpoints come from
# This lesson never downloads anything. With internet access, these commands fetch two real
# LLaMAs (printed here, not run):

# %%
print("""With internet access (not run by this lesson):

  # llama2.c's TinyStories model: 15M parameters, 58 MB, float32, legacy .bin format
  wget https://huggingface.co/karpathy/tinyllamas/resolve/main/stories15M.bin

  # a Hugging Face LLaMA folder: TinyLlama 1.1B, bfloat16, 2.2 GB
  pip install huggingface_hub
  hf download TinyLlama/TinyLlama-1.1B-Chat-v1.0 --include "*.json" "*.safetensors" \\
      --local-dir TinyLlama-1.1B          # older huggingface_hub: huggingface-cli download

then, in Python:   model = tl.load_checkpoint("stories15M.bin")
                   model = tl.load_checkpoint("TinyLlama-1.1B")  # 4.4 GB of float32 weights
or convert:        tinyllama-np convert stories15M.bin stories15M_hf --format hf
(To turn token ids into text you also need the tokenizer that came with the weights.)
""")

# %% [markdown]
# ## 2. Offline: train a tiny model, export it to every format, load it back
# The counting task of lesson 09: sequences that count upwards modulo 32.

# %%
config = tl.LlamaConfig(vocab_size=32, dim=32, n_layers=2, n_heads=4, n_kv_heads=2,
                        max_seq_len=16)
model = tl.Llama(config, seed=0)
starts = rng.integers(0, 32, size=(16, 1))
tokens = (starts + np.arange(17)) % 32
inputs, targets = tokens[:, :-1], tokens[:, 1:]
optimizer = AdamW(model.params, lr=1e-2, weight_decay=0.0)  # lesson 10
start = time.perf_counter()
for step in range(121):
    loss, grads = model.loss_and_grads(inputs, targets)
    optimizer.step(grads)
print(f"trained {model.num_params():,} parameters for 120 steps in "
      f"{time.perf_counter() - start:.1f} s, loss {loss:.3f}")
assert loss < 0.5

prompt = np.array([[5, 6, 7, 8]])
reference = model.forward(prompt)
print(f"\n{'format':12s} {'file':22s} {'bytes':>8s}  detected      max |logit difference|")
exports = [("npz", None, "model.npz"), ("llama2c", None, "model.bin"),
           ("llama2c-v1", None, "model_v1.bin"), ("hf", None, "hf_float32"),
           ("hf", "bfloat16", "hf_bfloat16")]
for form, dtype, name in exports:
    path = tl.save_checkpoint(model, os.path.join(workdir, name), format=form, dtype=dtype)
    size = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path)) \
        if os.path.isdir(path) else os.path.getsize(path)
    loaded = tl.load_checkpoint(path)
    difference = np.abs(loaded.forward(prompt) - reference).max()
    label = form + ("/" + dtype if dtype else "")
    print(f"{label:12s} {name:22s} {size:8d}  {tl.checkpoint_format(path):12s}  {difference:.2e}")
    if dtype is None:
        assert difference == 0  # float32 formats: bit-identical weights, identical logits
    else:
        assert difference < 0.1  # bfloat16 keeps 8 significant bits: close, not equal
    assert loaded.forward(prompt)[0, -1].argmax() == 9
print("every format loads back to the same model; bfloat16 rounds the weights slightly")

# %% [markdown]
# ## 3. What is inside the files
# llama2.c: seven int32 numbers, then float32 weights (a negative vocab_size means the output
# matrix is stored separately instead of shared with the embedding). No names: the order
# of the weights IS the format.

# %%
with open(os.path.join(workdir, "model.bin"), "rb") as file:
    header = struct.unpack("<7i", file.read(28))
print("\nllama2.c header:", dict(zip(["dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads",
                                      "vocab_size", "seq_len"], header)))
assert header[5] == -config.vocab_size  # not tied

# safetensors: 8 bytes of header length, a JSON header with names, dtypes, shapes and byte
# ranges, then the raw bytes. Safe to open (unlike PyTorch's pickle files, which can run
# code) and easy to memory-map: the loader maps the file and copies out one tensor at a time.
with open(os.path.join(workdir, "hf_bfloat16", "model.safetensors"), "rb") as file:
    length = struct.unpack("<Q", file.read(8))[0]
    header = json.loads(file.read(length))
print("safetensors header, first entries:")
for name in list(header)[:4]:
    print(f"   {name:42s} {header[name]}")

# %% [markdown]
# ## 4. Why Hugging Face's wq and wk rows are in another order
# RoPE (lesson 05) rotates PAIRS of a head's dimensions. Meta pairs neighbours
# (0,1), (2,3), (4,5). Hugging Face's "rotate half" pairs dimension i with i + head_dim/2:
# (0,3), (1,4), (2,5). Both rotate pair j by the angle pos * theta^(-2j/head_dim); only the
# place of the pair's two members differs. So reordering the rows of wq and wk, Meta's even
# rows first and odd rows second, turns one into the other:

# %%
head_dim = 6
order = tl.checkpoint.rope_row_order(n_heads=1, head_dim=head_dim)
print("\nhead_dim 6: Hugging Face row r holds Meta row", order.tolist())
# Worked example: one head, position 5. The Meta query pairs are (a0,b0), (a1,b1), (a2,b2).
q_meta = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])  # a0 b0 a1 b1 a2 b2
q_hf = q_meta[order]                                # a0 a1 a2 b0 b1 b2
print("Meta order  (a0 b0 a1 b1 a2 b2):", q_meta)
print("HF order    (a0 a1 a2 b0 b1 b2):", q_hf)

position, theta = 5, 10000.0
angles = position * theta ** (-np.arange(0, head_dim, 2) / head_dim)  # one angle per pair
# Meta: complex multiplication of each neighbour pair.
pairs = (q_meta[0::2] + 1j * q_meta[1::2]) * np.exp(1j * angles)
rotated_meta = np.stack([pairs.real, pairs.imag], axis=-1).reshape(-1)
# Hugging Face: x * cos + rotate_half(x) * sin, with rotate_half(x) = [-x2, x1].
cos, sin = np.cos(np.tile(angles, 2)), np.sin(np.tile(angles, 2))
half = head_dim // 2
rotated_hf = q_hf * cos + np.concatenate([-q_hf[half:], q_hf[:half]]) * sin
print("Meta RoPE, then reordered:", np.round(rotated_meta[order], 4))
print("HF RoPE on reordered q:   ", np.round(rotated_hf, 4))
assert np.allclose(rotated_meta[order], rotated_hf)
# The same reordering applies to k, so every q.k score, and so attention, is unchanged.
# The loader undoes it (Meta row order[r] <- HF row r); the writer redoes it.

# %% [markdown]
# ## 5. A round trip cannot catch everything
# If the writer and the reader made the same mistake (say, no reordering at all), saving and
# loading would still give back identical weights. That is why the test suite also checks
# against independent references: a llama2.c file written byte by byte, transformers'
# LlamaForCausalLM reading our folders (when installed), and the rotate-half algebra above.

# %%
shutil.rmtree(workdir)  # comment out to look at the files

# %% [markdown]
# ## Exercise
# 1. With internet: download stories15M.bin, load it, and print `model.config`. How many
#    parameters? Which fraction of them is the embedding matrix?
# 2. Save the trained model with `format="hf", dtype="float16"`. Is the logit difference
#    smaller or larger than with bfloat16? Why (bits of mantissa versus bits of exponent)?
# 3. Change `rope_row_order` to return `np.arange(n_heads * head_dim)` (no reordering) and run
#    this lesson and `python -m pytest tests/test_checkpoint.py`. Which checks notice, which
#    do not, and why?
