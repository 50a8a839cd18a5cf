# %% [markdown]
# # Lesson 03: attention
#
# Seed chapter, sections 2.3 (注意力机制与变压器) and 4.1 (注意力机制): each position forms a
# query q, compares it with every position's key k, turns the scores into weights with a
# softmax, and averages the values v with those weights:
#
#     Attention(Q, K, V) = softmax(Q K^T / sqrt(d)) V
#
# Section 3.1.1 (多头自注意力, multi-head self-attention): several such attentions run side by
# side on slices of the vector. LLaMA 2 70B and LLaMA 3 share each key/value head among a group
# of query heads: grouped-query attention (GQA).
#
# Run:  python lessons/03_attention.py

# %%
import numpy as np

import tinyllama_np as tl

rng = np.random.default_rng(0)
np.set_printoptions(precision=3, suppress=True)

# %% [markdown]
# ## A toy example: which key matches the query?
# Three keys; the query points the same way as key 1. The softmax puts most weight there and
# the output is mostly value 1.

# %%
keys = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
values = np.array([[10.0, 0.0], [0.0, 10.0], [-10.0, -10.0]])
query = np.array([[0.0, 3.0]])
attention = tl.ScaledDotProductAttention()
output = attention.forward(query, keys, values)
print("scores q.k / sqrt(2):", (query @ keys.T / np.sqrt(2))[0])
print("weights (softmax):   ", attention.probs[0])
print("output:              ", output[0])
assert np.argmax(attention.probs[0]) == 1

# %% [markdown]
# ## Why divide by sqrt(d)?
# For random q and k with unit-variance entries, q.k is a sum of d terms: its spread grows
# like sqrt(d). Unscaled, the softmax of large scores is nearly one-hot: the largest weight is
# ~1 and the gradient flowing back through the softmax nearly vanishes.

# %%
softmax = tl.Softmax()
for d in [4, 64, 512]:
    q = rng.standard_normal((1, d))
    k = rng.standard_normal((16, d))
    for name, scale in [("scaled  ", 1 / np.sqrt(d)), ("unscaled", 1.0)]:
        probs = softmax.forward(q @ k.T * scale)
        d_scores = softmax.backward(rng.standard_normal(probs.shape))
        print(f"d={d:4d} {name}: largest weight {probs.max():.3f}, "
              f"gradient size through softmax {np.abs(d_scores).mean():.2e}")

# %% [markdown]
# ## Multi-head attention with grouped-query heads
# 4 query heads share 2 key/value heads (groups of 2). wq maps dim -> n_heads * head_dim;
# wk and wv map dim -> n_kv_heads * head_dim, which is smaller.

# %%
dim, n_heads, n_kv_heads, head_dim = 16, 4, 2, 4
mha = tl.MultiHeadAttention(
    wq=rng.standard_normal((n_heads * head_dim, dim)) * 0.3,
    wk=rng.standard_normal((n_kv_heads * head_dim, dim)) * 0.3,
    wv=rng.standard_normal((n_kv_heads * head_dim, dim)) * 0.3,
    wo=rng.standard_normal((dim, n_heads * head_dim)) * 0.3,
    n_heads=n_heads, n_kv_heads=n_kv_heads, rotations=tl.rope_rotations(head_dim, 32))
x = rng.standard_normal((2, 5, dim))
print("\nmulti-head attention:", x.shape, "->", mha.forward(x).shape)
for name, value in mha.params.items():
    print(f"  {name:10s} {value.shape}")

# The key/value cache used in generation stores k and v for every past token:
# 2 * n_kv_heads * head_dim numbers per token and layer. GQA shrinks it by n_heads / n_kv_heads.
for config_name, kv in [("MHA (n_kv_heads = n_heads)", n_heads), ("GQA", n_kv_heads), ("MQA", 1)]:
    print(f"  KV cache per token per layer, {config_name:26s}: {2 * kv * head_dim} numbers")

# %% [markdown]
# ## Check the backward passes
# Attention's backward, from the output back: dP = dO V^T, dV = P^T dO, the softmax backward
# dS = P * (dP - sum(dP * P)), then dQ = dS K * scale, dK = dS^T Q * scale.

# %%
print("\ngradient check, scaled dot-product attention (batch 2, 3 heads, 5 positions):")
q, k, v = (rng.standard_normal((2, 3, 5, 4)) for _ in range(3))
report = tl.gradcheck(tl.ScaledDotProductAttention(), q, k, v, verbose=True)
assert max(report.values()) < 1e-6
print("gradient check, multi-head attention with GQA (4 query heads, 2 kv heads):")
report = tl.gradcheck(mha, x, verbose=True)
assert max(report.values()) < 1e-6

# %% [markdown]
# ## Exercise
# 1. In `tinyllama_np/nn/attention.py`, remove the 1/sqrt(d) scale (set self.scale = 1.0) and
#    run `pytest tests/test_gradients.py`. The gradient checks still pass: they verify that
#    backward is the derivative of forward, not that the model is a good one. The table above
#    shows what goes wrong instead: for large d the weights saturate and gradients vanish.
# 2. Break `repeat_kv_backward` so it keeps only the first copy instead of summing, and rerun:
#    which check fails, and why only with n_kv_heads < n_heads?
