# %% [markdown]
# # Lesson 07: the feed-forward network, SwiGLU versus GELU and ReLU
#
# Seed chapter, section 3.1.1 (前馈神经网络层, feed-forward layer): after attention has mixed
# information between positions, each position is transformed on its own by a small two-layer
# network through a wider hidden layer.
#
# * Original Transformer: ReLU MLP, w_out(relu(w_in x)); GPT-2: the same with GELU.
# * LLaMA: SwiGLU, w2(silu(w1 x) * w3 x). A second projection (w3) is gated by the first.
#   Three matrices instead of two, so LLaMA shrinks the hidden size to 2/3 of 4*dim to keep the
#   parameter count the same.
#
# Run:  python lessons/07_feedforward.py

# %%
import numpy as np

import tinyllama_np as tl
from tinyllama_np.nn.feedforward import sigmoid

rng = np.random.default_rng(0)

# %% [markdown]
# ## The activations
# silu(a) = a * sigmoid(a): like ReLU for large |a|, but smooth, and slightly negative for
# small negative a.

# %%
points = np.linspace(-4, 4, 9)
print("     a:", " ".join(f"{a:6.2f}" for a in points))
print("  relu:", " ".join(f"{a:6.2f}" for a in np.maximum(points, 0)))
print("  silu:", " ".join(f"{a:6.2f}" for a in points * sigmoid(points)))

# %% [markdown]
# ## Same parameter budget
# dim 96: MLP hidden 4*96 = 384 (2 matrices); SwiGLU hidden per LLaMA's rule (3 matrices).

# %%
dim = 96
mlp_hidden = 4 * dim
swiglu_hidden = tl.default_hidden_dim(dim)
print(f"\nMLP    hidden {mlp_hidden}: {2 * dim * mlp_hidden} parameters")
print(f"SwiGLU hidden {swiglu_hidden}: {3 * dim * swiglu_hidden} parameters")


def make(kind):
    def weight(out_features, in_features):
        return rng.standard_normal((out_features, in_features)) / np.sqrt(in_features)
    if kind == "swiglu":
        return tl.SwiGLU(weight(swiglu_hidden, dim), weight(dim, swiglu_hidden), weight(swiglu_hidden, dim))
    return tl.MLP(weight(mlp_hidden, dim), weight(dim, mlp_hidden), kind)


# %% [markdown]
# ## A small race: fit the same target function with each
# The target is a fixed random smooth function of the input. Plain gradient descent with the
# hand-written backward passes, same steps and learning rate for all three.

# %%
inputs = rng.standard_normal((128, dim))
teacher = make("gelu")
targets = teacher.forward(inputs) + np.sin(inputs[:, :1] * 2)
print("\nmean squared error while training (same budget, 200 steps of gradient descent):")
for kind in ["relu", "gelu", "swiglu"]:
    ffn = make(kind)
    losses = []
    for step in range(200):
        error = ffn.forward(inputs) - targets
        losses.append(np.mean(error ** 2))
        ffn.zero_grad()
        ffn.backward(2 * error / error.size)
        for name, param in ffn.params.items():
            param -= 0.5 * ffn.grads[name]
    print(f"  {kind:7s} start {losses[0]:.3f}  step 100 {losses[100]:.3f}  end {losses[-1]:.3f}")
    assert losses[-1] < losses[0]

# %% [markdown]
# (One toy race proves little; the LLaMA and PaLM papers report SwiGLU's advantage on
# language modelling at scale.)
#
# ## Check the backward passes
# SwiGLU: h = silu(a) * c with a = w1 x, c = w3 x; dc = dh * silu(a),
# da = dh * c * silu'(a), silu'(a) = sigmoid(a) * (1 + a * (1 - sigmoid(a))).

# %%
x = rng.standard_normal((2, 3, 7))
for kind, module in [("SwiGLU", tl.SwiGLU(*(rng.standard_normal(s) for s in [(9, 7), (7, 9), (9, 7)]))),
                     ("GELU MLP", tl.MLP(rng.standard_normal((9, 7)), rng.standard_normal((7, 9)))),
                     ("ReLU MLP", tl.MLP(rng.standard_normal((9, 7)), rng.standard_normal((7, 9)), "relu"))]:
    print(f"\ngradient check, {kind}:")
    report = tl.gradcheck(module, x, verbose=True)
    assert max(report.values()) < 1e-6

# %% [markdown]
# ## Exercise
# 1. Turn SwiGLU into ReGLU: replace silu by relu in `SwiGLU.forward` and fix the backward to
#    match (relu'(a) = 1 where a > 0). Check it with `tl.gradcheck` before training.
# 2. In `SwiGLU.backward`, replace silu'(a) by sigmoid(a) (a tempting shortcut). How large is
#    the gradient check's error?
