# %% [markdown]
# # Lesson 05: positions, sinusoidal and rotary (RoPE)
#
# Attention compares every query with every key, but nothing in softmax(QK^T)V knows which
# key came first: shuffle the tokens and each output is shuffled the same way. Word order
# must be put in explicitly.
#
# * The original Transformer (the architecture of the chapter's section 3.1) ADDS a fixed sinusoidal vector to each
#   position's embedding, once, at the input.
# * LLaMA ROTATES queries and keys instead, in every layer (RoPE, rotary position embedding):
#   the pair (x[2i], x[2i+1]) is read as a complex number and multiplied by e^{i m theta_i} at
#   position m. Then q_m . k_n depends on m and n only through m - n.
#
# Run:  python lessons/05_positions.py

# %%
import numpy as np

import tinyllama_np as tl

rng = np.random.default_rng(0)

# %% [markdown]
# ## Attention alone ignores order

# %%
attention = tl.ScaledDotProductAttention()
x = rng.standard_normal((5, 8))
order = np.array([3, 0, 4, 1, 2])
out = attention.forward(x, x, x)
out_shuffled = attention.forward(x[order], x[order], x[order])
assert np.allclose(out[order], out_shuffled)
print("shuffle the input, get the same outputs shuffled: attention has no notion of order")

# %% [markdown]
# ## Sinusoidal encoding (original Transformer)
# PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(pos / 10000^(2i/d)).
# Fast-turning dimensions on the left, slow ones on the right: a "binary clock" of waves.

# %%
table = tl.sinusoidal_encoding(24, 16)
shades = " .:-=+*#%@"
print("\nsinusoidal table, 24 positions (rows) x 16 dims (columns):")
for row in table:
    print("   ", "".join(shades[int((value + 1) / 2 * (len(shades) - 1))] for value in row))

# %% [markdown]
# ## RoPE (LLaMA)
# Rotating both q and k by their own positions leaves their dot product depending only on
# the offset m - n. Check it: the same offset at different absolute positions gives the same
# score.

# %%
head_dim = 8
rope = tl.RoPE(tl.rope_rotations(head_dim, max_seq_len=128, theta=10000.0))
q = rng.standard_normal(head_dim)
k = rng.standard_normal(head_dim)


def at(vector, position):
    return rope.forward(vector.reshape(1, 1, 1, head_dim), start_pos=position).reshape(head_dim)


print("\nq.k after RoPE, query at m, key at n:")
print("    offset m-n:", "".join(f"{o:>9d}" for o in [0, 1, 2, 8]))
for n in [0, 10, 50]:
    scores = [at(q, n + offset) @ at(k, n) for offset in [0, 1, 2, 8]]
    print(f"    key at n={n:2d}:", "".join(f"{s:9.4f}" for s in scores))
    assert np.allclose(scores, [at(q, offset) @ at(k, 0) for offset in [0, 1, 2, 8]])

# A rotation keeps lengths: RoPE changes directions, never norms.
assert np.isclose(np.linalg.norm(at(q, 37)), np.linalg.norm(q))

# Each pair turns at its own speed theta^(-2i/d): pair 0 one radian per position, the last
# pair very slowly, so some pairs resolve nearby positions and others distant ones.
freqs = 10000.0 ** (-np.arange(0, head_dim, 2) / head_dim)
print("\nradians per position for each pair:", np.round(freqs, 4))

# %% [markdown]
# Meta's convention pairs neighbours (x0, x1), (x2, x3), ...; Hugging Face's checkpoints pair
# x[i] with x[i + d/2] ("rotate half") and permute the rows of wq and wk to match. Lesson 15
# shows that permutation.
#
# ## Check the backward passes
# RoPE is a rotation, so its backward rotates back: dx = dy * e^{-i m theta}.

# %%
print("\ngradient check, RoPE at position offset 5:")
report = tl.gradcheck(rope, rng.standard_normal((2, 6, 3, head_dim)), start_pos=5, verbose=True)
assert max(report.values()) < 1e-6
print("gradient check, sinusoidal encoding:")
positions = tl.SinusoidalPositions(tl.sinusoidal_encoding(16, 8))
report = tl.gradcheck(positions, rng.standard_normal((2, 6, 8)), verbose=True)
assert max(report.values()) < 1e-6

# %% [markdown]
# ## Exercise
# 1. LLaMA 3 uses theta = 500000. Print the radians per position for that theta: how many
#    positions does the slowest pair need for one full turn? Why does a larger theta help long
#    contexts?
# 2. Replace the complex multiply in `RoPE.forward` by rotating (x[i], x[i + d/2]) pairs
#    (Hugging Face's layout) and rerun the offset table. Does "depends only on m - n" still
#    hold? Do Meta's checkpoint weights still give the same model?
