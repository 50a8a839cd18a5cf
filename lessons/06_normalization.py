# %% [markdown]
# # Lesson 06: normalisation, LayerNorm and RMSNorm
#
# Deep stacks of layers train well only if the numbers flowing through them keep a sensible
# size. The original Transformer normalises with LayerNorm after each sub-layer (post-norm);
# LLaMA uses RMSNorm before each sub-layer (pre-norm):
#
#     LayerNorm(x) = (x - mean(x)) / sqrt(var(x) + eps) * w + b
#     RMSNorm(x)   =  x            / sqrt(mean(x^2) + eps) * w        (eps inside the root)
#
# RMSNorm drops the centring and the bias: cheaper, and in practice as good.
#
# Run:  python lessons/06_normalization.py

# %%
import numpy as np

import tinyllama_np as tl

rng = np.random.default_rng(0)
np.set_printoptions(precision=3, suppress=True)

# %% [markdown]
# ## What each one does to a vector

# %%
x = np.array([[1.0, 2.0, 3.0, 10.0]])
rms = tl.RMSNorm(np.ones(4), eps=1e-5)
layer = tl.LayerNorm(np.ones(4), np.zeros(4), eps=1e-5)
print("x          ", x[0])
print("RMSNorm(x) ", rms.forward(x)[0], " root-mean-square 1, mean not 0")
print("LayerNorm(x)", layer.forward(x)[0], " mean 0, variance 1")
assert np.isclose(np.sqrt(np.mean(rms.forward(x) ** 2)), 1, atol=1e-5)
assert np.isclose(layer.forward(x).mean(), 0, atol=1e-9)

# %% [markdown]
# ## Invariances
# RMSNorm ignores the scale of its input; LayerNorm also ignores a shift. (Up to eps, which
# only matters when x is tiny.)

# %%
print("\nRMSNorm(5 x) == RMSNorm(x):   ", np.allclose(rms.forward(5 * x), rms.forward(x), atol=1e-5))
print("RMSNorm(x + 3) == RMSNorm(x): ", np.allclose(rms.forward(x + 3), rms.forward(x), atol=1e-5))
print("LayerNorm(x + 3) == LayerNorm(x):", np.allclose(layer.forward(x + 3), layer.forward(x), atol=1e-5))
assert np.allclose(rms.forward(5 * x), rms.forward(x), atol=1e-5)

# %% [markdown]
# ## Pre-norm keeps the residual stream trainable
# In a pre-norm block, x + f(norm(x)), the residual path is a clean identity from the loss to
# the embeddings: gradients reach the first layer undiminished however deep the model is.
# Measure the gradient that reaches the embeddings of a freshly initialised 8-layer LLaMA, and
# the size of the residual stream after each block.

# %%
config = tl.LlamaConfig(vocab_size=100, dim=64, n_layers=8, n_heads=4)
model = tl.Llama(config, seed=0, dtype=np.float64)
tokens = rng.integers(0, 100, size=(2, 16))
x = model.tok_embeddings.forward(tokens)
allowed = tl.causal_mask(16)
print(f"\nresidual stream RMS: embeddings {np.sqrt(np.mean(x ** 2)):.4f}", end="")
for i, layer_block in enumerate(model.layers):
    x = layer_block.forward(x, allowed)
    print(f", block {i} {np.sqrt(np.mean(x ** 2)):.4f}", end="")
print()
loss, grads = model.loss_and_grads(tokens, np.roll(tokens, -1, axis=1))
for name in ["layers.7.attention.wq.weight", "layers.0.attention.wq.weight", "tok_embeddings.weight"]:
    print(f"  gradient norm of {name:30s} {np.linalg.norm(grads[name]):.2e}")

# %% [markdown]
# ## Check the backward passes
# RMSNorm: with x_hat = x / rms, dx = (dy*w - x_hat * mean(dy*w * x_hat)) / rms. The second
# term removes the part of the gradient that would only change the vector's length, which
# RMSNorm undoes anyway.

# %%
print("\ngradient check, RMSNorm:")
report = tl.gradcheck(tl.RMSNorm(1 + 0.3 * rng.standard_normal(7)), rng.standard_normal((3, 5, 7)),
                      verbose=True)
assert max(report.values()) < 1e-6
print("gradient check, LayerNorm:")
report = tl.gradcheck(tl.LayerNorm(1 + 0.3 * rng.standard_normal(7), rng.standard_normal(7)),
                      rng.standard_normal((3, 5, 7)), verbose=True)
assert max(report.values()) < 1e-6

# %% [markdown]
# ## Exercise
# 1. Move eps outside the square root in `RMSNorm.forward` (x / (sqrt(mean(x^2)) + eps)) and
#    compare outputs for x = 1e-4 * ones(8): why does LLaMA's placement matter for loading
#    real checkpoints?
# 2. Drop the projection term `- x_hat * mean(...)` in `RMSNorm.backward` and run
#    `pytest tests/test_gradients.py -k rmsnorm`. Watch it fail.
