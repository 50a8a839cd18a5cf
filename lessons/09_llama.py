# %% [markdown]
# # Lesson 09: the whole LLaMA
#
# The components of lessons 02-07 composed into the model of the seed chapter's section 1.3.
# (A correction to the chapter: LLaMA stands for "Large Language Model Meta AI". It is a
# decoder-only Transformer: no encoder, no cross-attention; RMSNorm, RoPE and SwiGLU replace
# the original Transformer's LayerNorm, sinusoidal positions and ReLU.)
#
#     tokens -> tok_embeddings -> n_layers x block -> norm -> output -> logits
#     block:  h   = x + attention(attention_norm(x))        (pre-norm, residual)
#             out = h + feed_forward(ffn_norm(h))
#
# Run:  python lessons/09_llama.py

# %%
import time

import numpy as np

import tinyllama_np as tl

rng = np.random.default_rng(0)

# %% [markdown]
# ## The parameters, with Meta's checkpoint names

# %%
config = tl.LlamaConfig(vocab_size=64, dim=48, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=32)
model = tl.Llama(config, seed=0)
print(config)
for name, value in model.params.items():
    if name.startswith(("layers.1",)):
        continue  # layer 1 has the same names and shapes as layer 0
    print(f"  {name:38s} {str(value.shape):12s} {value.size:7d}")
print(f"  ... layers.1.* as layers.0.*\n  total {model.num_params():,} parameters")

# %% [markdown]
# ## Before training, the model knows nothing
# Its predictions are close to uniform, so the loss is close to log(vocab_size).

# %%
tokens = rng.integers(0, 64, size=(4, 32))
targets = np.roll(tokens, -1, axis=1)
loss, grads = model.loss_and_grads(tokens, targets)
print(f"\nloss at initialisation {loss:.3f}, log(vocab) = {np.log(64):.3f}")
assert abs(loss - np.log(64)) < 0.1

# %% [markdown]
# ## Gradient check of the whole model
# In float64 with weights moved away from the near-linear initialisation; a sample of entries
# of every parameter tensor.

# %%
small = tl.Llama(tl.LlamaConfig(vocab_size=19, dim=16, n_layers=2, n_heads=4, n_kv_heads=2,
                                max_seq_len=8), seed=1, dtype=np.float64)
for param in small.params.values():
    param += 0.3 * rng.standard_normal(param.shape)
print("\ngradient check of every parameter tensor of a 2-layer LLaMA (6 sampled entries each):")
report = tl.gradcheck(small, rng.integers(0, 19, size=(2, 6)), max_entries=6)
worst = max(report, key=report.get)
print(f"  {len(report)} tensors, worst: {worst} {report[worst]:.1e}")
assert report[worst] < 1e-6

# %% [markdown]
# ## Watch it learn
# A tiny data set: sequences that count upwards modulo 64 from a random start. A model that
# understands "next = previous + 1" predicts every token after the first. Plain gradient
# descent with momentum, 150 steps.

# %%
starts = rng.integers(0, 64, size=(16, 1))
tokens = (starts + np.arange(17)) % 64
inputs, targets = tokens[:, :-1], tokens[:, 1:]
velocity = {name: np.zeros_like(p) for name, p in model.params.items()}
start = time.perf_counter()
for step in range(151):
    loss, grads = model.loss_and_grads(inputs, targets)
    for name, param in model.params.items():
        velocity[name] = 0.9 * velocity[name] + grads[name]
        param -= 0.05 * velocity[name]
    if step % 30 == 0:
        print(f"  step {step:3d}  loss {loss:.3f}")
print(f"  ({time.perf_counter() - start:.1f} s)")
assert loss < 0.5

prediction = model.forward(np.array([[10, 11, 12, 13]])).argmax(-1)
print("after 10 11 12 13 the model predicts", prediction[0, -1])
assert prediction[0, -1] == 14

# %% [markdown]
# ## Exercise
# 1. Set `tie_embeddings=True` in the config: how many parameters does that save here, and
#    does the counting task still train?
# 2. Set n_kv_heads=1 (multi-query attention). Train again: any difference on this task?
# 3. Remove the residual connections in `TransformerBlock.forward` (and backward). What
#    happens to the loss curve with n_layers=8?
