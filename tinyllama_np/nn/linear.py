"""Linear layer (no bias, as in LLaMA) and token embedding.

Weights have shape (out_features, in_features), as in PyTorch and Meta's checkpoints, so a
linear layer computes y = x @ W.T. Their memory order is free: Llama stores its weight
matrices column by column (see llama.py), and everything here works with either order.
"""

import numpy as np

from .module import Module, memory_order


class Linear(Module):
    def __init__(self, weight, grad=None):
        super().__init__()
        self.add_param("weight", weight, grad)

    def forward(self, x):
        self.x = x
        weight = self.params["weight"]
        # Positions of every batch row form one tall matrix: one big matrix product is
        # faster than a stack of small ones.
        return (x.reshape(-1, x.shape[-1]) @ weight.T).reshape(*x.shape[:-1], weight.shape[0])

    def backward(self, dy):
        # y = x W^T  =>  dW = dy^T x (summed over every position),  dx = dy W
        weight = self.params["weight"]
        x2d = self.x.reshape(-1, self.x.shape[-1])
        dy2d = dy.reshape(-1, dy.shape[-1])
        if "weight" in self.grads:  # absent when frozen
            grad = self.grads["weight"]
            # The product is written in the gradient's own memory order: adding an array of
            # one order into one of the other is many times slower than the product itself.
            grad += np.matmul(dy2d.T, x2d, order=memory_order(grad))
        return (dy2d @ weight).reshape(self.x.shape)


class Embedding(Module):
    """Row lookup: token id t -> W[t]. The weight is (vocab_size, dim)."""

    def __init__(self, weight, grad=None):
        super().__init__()
        self.add_param("weight", weight, grad)

    def forward(self, tokens):
        tokens = np.asarray(tokens)
        vocab_size = self.params["weight"].shape[0]
        if not np.issubdtype(tokens.dtype, np.integer):
            raise ValueError(f"token ids must be integers, got dtype {tokens.dtype}")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= vocab_size):
            bad = tokens[(tokens < 0) | (tokens >= vocab_size)][0]
            raise ValueError(f"token id {bad} is out of range [0, {vocab_size})")
        self.tokens = tokens
        return self.params["weight"][tokens]

    def backward(self, dy):
        # Each row W[t] was copied to every position holding token t, so dW[t] is the sum
        # of dy over those positions. Sorting the positions by token puts each token's rows
        # side by side; np.add.reduceat sums each run in one pass. (np.add.at(dW, tokens, dy)
        # says the same in one line, but adds one row at a time: many times slower.)
        if "weight" not in self.grads:  # frozen
            return None
        tokens = self.tokens.reshape(-1)
        order = np.argsort(tokens, kind="stable")
        sorted_tokens = tokens[order]
        run_starts = np.flatnonzero(np.diff(sorted_tokens, prepend=-1))
        sums = np.add.reduceat(dy.reshape(-1, dy.shape[-1])[order], run_starts, axis=0)
        self.grads["weight"][sorted_tokens[run_starts]] += sums
        return None
