"""Normalisation: RMSNorm (LLaMA) and LayerNorm (the original Transformer).

Both rescale each position's vector (the last axis) on its own; neither mixes positions.
"""

import numpy as np

from .module import Module


# Sums of products written with einsum, which never builds the product array.
def row_dot(a, b):
    """sum(a * b) over the last axis, kept as a length-1 axis: (..., n) -> (..., 1)."""
    return np.einsum("...i,...i->...", a, b)[..., None]


def column_dot(a, b):
    """sum(a * b) over the rows of two (rows, n) arrays -> (n,)."""
    return np.einsum("ij,ij->j", a, b)


class RMSNorm(Module):
    """y = x / sqrt(mean(x^2) + eps) * w   (eps inside the square root, as in LLaMA)."""

    def __init__(self, weight, eps=1e-5, grad=None):
        super().__init__()
        self.add_param("weight", weight, grad)
        self.eps = eps

    def forward(self, x):
        mean_square = row_dot(x, x) / x.shape[-1]
        self.inv_rms = 1.0 / np.sqrt(mean_square + self.eps)
        self.x_hat = x * self.inv_rms
        return self.x_hat * self.params["weight"]

    def backward(self, dy):
        # dw = sum(dy * x_hat);  dx = (dy*w - x_hat * mean(dy*w * x_hat)) / rms
        x_hat = self.x_hat
        width = x_hat.shape[-1]
        if "weight" in self.grads:  # absent when frozen
            self.grads["weight"] += column_dot(dy.reshape(-1, width), x_hat.reshape(-1, width))
        d_x = dy * self.params["weight"]
        d_x -= x_hat * (row_dot(d_x, x_hat) / width)
        d_x *= self.inv_rms
        return d_x


class LayerNorm(Module):
    """y = (x - mean(x)) / sqrt(var(x) + eps) * w + b   (centres as well as rescales)."""

    def __init__(self, weight, bias, eps=1e-5):
        super().__init__()
        self.add_param("weight", weight)
        self.add_param("bias", bias)
        self.eps = eps

    def forward(self, x):
        centred = x - np.mean(x, axis=-1, keepdims=True)
        self.inv_std = 1.0 / np.sqrt(np.mean(centred * centred, axis=-1, keepdims=True) + self.eps)
        self.x_hat = centred * self.inv_std
        return self.x_hat * self.params["weight"] + self.params["bias"]

    def backward(self, dy):
        # dw = sum(dy * x_hat);  db = sum(dy);
        # dx = (g - mean(g) - x_hat * mean(g * x_hat)) / std   with g = dy * w
        x_hat = self.x_hat
        width = x_hat.shape[-1]
        self.grads["weight"] += column_dot(dy.reshape(-1, width), x_hat.reshape(-1, width))
        self.grads["bias"] += dy.reshape(-1, width).sum(axis=0)
        g = dy * self.params["weight"]
        return (g - np.mean(g, axis=-1, keepdims=True)
                - x_hat * np.mean(g * x_hat, axis=-1, keepdims=True)) * self.inv_std
