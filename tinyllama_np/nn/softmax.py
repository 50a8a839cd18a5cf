"""Softmax over the last axis: p_i = exp(x_i) / sum_j exp(x_j)."""

import numpy as np

from .module import Module


class Softmax(Module):
    """`out=x` (forward) or `out=d_probs` (backward) computes in place: attention does, to
    spare copies of its large (batch, heads, T, T) arrays."""

    def forward(self, x, out=None):
        # Subtracting the row maximum changes nothing mathematically and keeps exp <= 1.
        probs = np.subtract(x, np.max(x, axis=-1, keepdims=True), out=out)
        np.exp(probs, out=probs)
        probs *= 1.0 / np.sum(probs, axis=-1, keepdims=True)
        self.probs = probs
        return probs

    def backward(self, d_probs, out=None):
        # Jacobian dp_i/dx_j = p_i (delta_ij - p_j)  =>  dx = p * (dp - sum(dp * p))
        probs = self.probs
        row_dot = np.einsum("...j,...j->...", d_probs, probs)  # sum(dp * p) per row, no temporary
        d_x = np.subtract(d_probs, row_dot[..., None], out=out)
        d_x *= probs
        return d_x
