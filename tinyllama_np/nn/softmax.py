"""Softmax over the last axis: p_i = exp(x_i) / sum_j exp(x_j)."""

import numpy as np

from .module import Module


class Softmax(Module):
    def forward(self, x):
        # Subtracting the row maximum changes nothing mathematically and keeps exp <= 1.
        shifted = x - np.max(x, axis=-1, keepdims=True)
        probs = np.exp(shifted, out=shifted)
        probs /= np.sum(probs, axis=-1, keepdims=True)
        self.probs = probs
        return probs

    def backward(self, d_probs):
        # Jacobian dp_i/dx_j = p_i (delta_ij - p_j)  =>  dx = p * (dp - sum(dp * p))
        probs = self.probs
        d_x = d_probs * probs
        d_x -= probs * np.sum(d_x, axis=-1, keepdims=True)
        return d_x
