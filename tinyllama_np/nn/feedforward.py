"""Position-wise feed-forward networks: SwiGLU (LLaMA) and a GELU/ReLU MLP (GPT, original Transformer).

Attention mixes information between positions; the feed-forward network then transforms
each position on its own, through a wider hidden layer.

SwiGLU is a gated unit: one projection (w3) carries the content, another (w1) passed
through SiLU decides how much of it passes: w2(silu(w1 x) * w3 x).
"""

import math

import numpy as np

from .linear import Linear
from .module import Module


def sigmoid(a):
    # 0.5 * (1 + tanh(a/2)) equals 1 / (1 + e^-a) and never overflows.
    # (Computed in place in one new array: these arrays are the widest in the block.)
    s = np.multiply(a, 0.5)
    np.tanh(s, out=s)
    s += 1.0
    s *= 0.5
    return s


class SwiGLU(Module):
    """w1, w3: (hidden, dim); w2: (dim, hidden). x (..., dim) -> (..., dim)."""

    def __init__(self, w1, w2, w3):
        super().__init__()
        self.w1 = self.add_module("w1", Linear(w1))
        self.w2 = self.add_module("w2", Linear(w2))
        self.w3 = self.add_module("w3", Linear(w3))

    def forward(self, x):
        self.gate_in = self.w1.forward(x)
        self.content = self.w3.forward(x)
        self.sig = sigmoid(self.gate_in)
        self.gate = self.gate_in * self.sig  # silu(a) = a * sigmoid(a)
        return self.w2.forward(self.gate * self.content)

    def backward(self, dy):
        d_hidden = self.w2.backward(dy)
        # h = silu(a) * c  =>  dc = dh * silu(a),  da = dh * c * silu'(a),
        # silu'(a) = sigmoid(a) * (1 + a * (1 - sigmoid(a))) = sig + silu(a) * (1 - sig)
        sig, gate = self.sig, self.gate
        d_content = d_hidden * gate
        d_gate_in = 1.0 - sig  # then, in place: * silu(a) + sig, * c, * dh
        d_gate_in *= gate
        d_gate_in += sig
        d_gate_in *= self.content
        d_gate_in *= d_hidden
        return self.w1.backward(d_gate_in) + self.w3.backward(d_content)


GELU_C = math.sqrt(2.0 / math.pi)  # a Python float, so float32 stays float32


class MLP(Module):
    """w_out(act(w_in x)) with act = 'gelu' (tanh approximation, as in GPT-2) or 'relu'.

    w_in: (hidden, dim), w_out: (dim, hidden). No biases, to compare like with like.
    """

    def __init__(self, w_in, w_out, activation="gelu"):
        super().__init__()
        if activation not in ("gelu", "relu"):
            raise ValueError(f"activation must be 'gelu' or 'relu', got {activation!r}")
        self.activation = activation
        self.w_in = self.add_module("w_in", Linear(w_in))
        self.w_out = self.add_module("w_out", Linear(w_out))

    def forward(self, x):
        a = self.w_in.forward(x)
        self.a = a
        if self.activation == "relu":
            return self.w_out.forward(np.maximum(a, 0))
        # gelu(a) ~= 0.5 a (1 + tanh(c (a + 0.044715 a^3)))
        self.t = np.tanh(GELU_C * (a + 0.044715 * a ** 3))
        return self.w_out.forward(0.5 * a * (1.0 + self.t))

    def backward(self, dy):
        d_act = self.w_out.backward(dy)
        a = self.a
        if self.activation == "relu":
            # relu'(a) = 1 where a > 0, else 0
            return self.w_in.backward(d_act * (a > 0))
        # gelu'(a) = 0.5 (1 + t) + 0.5 a (1 - t^2) c (1 + 3 * 0.044715 a^2)
        t = self.t
        slope = 0.5 * (1.0 + t) + 0.5 * a * (1.0 - t * t) * GELU_C * (1.0 + 3 * 0.044715 * a * a)
        return self.w_in.backward(d_act * slope)
