# %% [markdown]
# # Lesson 02: embeddings, linear layers, and checking a backward pass
#
# Seed chapter, section 2.2 (表示学习 / 词嵌入, representation learning and word embeddings):
# a token id is just an index; the model turns it into a vector by looking up one row of a
# learned matrix. Every later layer works on those vectors.
#
# This lesson also introduces the tool every other lesson uses: the gradient check, which
# compares a hand-written backward pass with finite differences.
#
# Run:  python lessons/02_embeddings.py

# %%
import numpy as np

import tinyllama_np as tl

rng = np.random.default_rng(0)

# %% [markdown]
# ## An embedding is a row lookup
# Vocabulary of 6 tokens, vectors of size 4. Token ids index rows.

# %%
table = rng.standard_normal((6, 4)).round(2)
embedding = tl.Embedding(table)
tokens = np.array([[2, 5, 2]])  # one sequence; token 2 appears twice
vectors = embedding.forward(tokens)
print("embedding table (vocab 6 x dim 4):\n", table)
print("tokens", tokens.tolist(), "-> vectors\n", vectors[0])
assert np.array_equal(vectors[0, 0], table[2]) and np.array_equal(vectors[0, 2], table[2])

# The same lookup written as a matrix product with one-hot rows: what a "linear layer on
# one-hot input" means, and why nobody computes it that way (a V x V one-hot matrix).
one_hot = np.eye(6)[tokens[0]]
assert np.allclose(one_hot @ table, vectors[0])
print("one_hot @ table gives the same vectors: the lookup is a cheap matrix product")

# %% [markdown]
# ## The backward of a lookup
# Row t was copied to every position holding token t, so the gradient of row t is the sum
# of the gradients at those positions. `np.add.at` adds correctly when an index repeats;
# `grad[tokens] += dy` would silently keep only one of the repeats.

# %%
d_vectors = np.ones((1, 3, 4))
embedding.zero_grad()
embedding.backward(d_vectors)
print("gradient of the table after d_out = ones:\n", embedding.grads["weight"])
assert np.all(embedding.grads["weight"][2] == 2)  # token 2 was used twice
assert np.all(embedding.grads["weight"][5] == 1)
assert np.all(embedding.grads["weight"][0] == 0)  # unused rows get nothing

# %% [markdown]
# ## Linear layer: y = x W^T
# Weights are stored (out_features, in_features), as in PyTorch and Meta's checkpoints.
# Backward: dW = dy^T x (summed over all positions), dx = dy W.

# %%
linear = tl.Linear(rng.standard_normal((3, 4)))
x = rng.standard_normal((2, 5, 4))  # batch 2, 5 positions, 4 features
y = linear.forward(x)
print("Linear (3 out, 4 in): x", x.shape, "-> y", y.shape)

# %% [markdown]
# ## The gradient check (梯度检验)
# Reduce the output to one number L = sum(y * R) with a fixed random R, so dL/dy = R.
# Then nudge each input and weight entry by +-eps and compare (L+ - L-) / (2 eps) with what
# backward returns. In float64, a correct backward agrees to about 1e-8; a wrong one is off
# by something near 1.

# %%
print("\ngradient check, Linear:")
report = tl.gradcheck(linear, x, verbose=True)
assert max(report.values()) < 1e-6
print("gradient check, Embedding:")
report = tl.gradcheck(tl.Embedding(rng.standard_normal((6, 4))), np.array([[2, 5, 2], [0, 2, 1]]),
                      verbose=True)
assert max(report.values()) < 1e-6


# %% [markdown]
# ## See a broken backward fail
# The classic embedding bug: `grad[tokens] += dy` instead of `np.add.at`.

# %%
class BuggyEmbedding(tl.Embedding):
    def backward(self, dy):
        self.grads["weight"][self.tokens.reshape(-1)] += dy.reshape(-1, dy.shape[-1])


report = tl.gradcheck(BuggyEmbedding(rng.standard_normal((6, 4))), np.array([[2, 5, 2]]))
print(f"\nbuggy embedding backward: worst relative error {max(report.values()):.2f}  <- caught")
assert max(report.values()) > 1e-3

# %% [markdown]
# ## Exercise
# 1. In `BuggyEmbedding`, use tokens without repeats, e.g. [[1, 3, 4]]. Does the check still
#    catch the bug? Why is "inputs that are not special" a rule for gradient checks?
# 2. Run `tl.gradcheck` on a float32 Linear layer. Read the error message: why must a
#    gradient check run in float64?
