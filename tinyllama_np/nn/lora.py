"""LoRA (low-rank adaptation): a frozen linear layer plus a small trainable update.

    y = x W^T  +  (alpha / r) * (x A^T) B^T          W (out, in) frozen
                                                      A (r, in), B (out, r) trained

The update B A is a matrix of rank at most r, stored as two thin factors: r * (in + out)
numbers instead of in * out. Fine-tuning changes a pretrained model by a small amount in a
few directions, so a low rank is enough (Hu et al., 2021), and the frozen W needs neither a
gradient nor optimizer moments: memory for a run is the base weights plus tiny adapters.

A starts small and random, B at zero, so B A = 0 and training starts from the base model
exactly; the first gradient step moves B (dB = s dy^T (x A^T) is not zero), then A.
alpha / r (the "scale") keeps the update's size roughly independent of the rank chosen.

Optional dropout on the low-rank path (as PEFT's lora_dropout): x is dropped before A, the
base path sees all of x.
"""

import numpy as np

from .module import Module


class LoRALinear(Module):
    """A drop-in replacement for Linear: params weight (frozen, no gradient), lora_A, lora_B."""

    def __init__(self, weight, rank, alpha, dropout=0.0, seed=0):
        super().__init__()
        out_features, in_features = weight.shape
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1:
            raise ValueError(f"LoRA rank must be a positive integer, got {rank!r}")
        if rank > min(out_features, in_features):
            raise ValueError(f"LoRA rank {rank} is larger than the layer it adapts "
                             f"({out_features} x {in_features}): at most {min(out_features, in_features)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {dropout}")
        self.rank, self.alpha, self.dropout = int(rank), float(alpha), float(dropout)
        self.scale = self.alpha / self.rank
        self.training = True  # dropout only while training; set False to evaluate
        self.rng = np.random.default_rng(seed)
        # A: uniform(-1/sqrt(in), 1/sqrt(in)) like PyTorch's default Linear init (PEFT's
        # choice too); B: zeros, so the adapter adds nothing until it has learned something.
        bound = 1.0 / np.sqrt(in_features)
        lora_a = self.rng.uniform(-bound, bound, (self.rank, in_features)).astype(weight.dtype)
        self.params["weight"] = weight  # frozen: deliberately no entry in self.grads
        self.add_param("lora_A", lora_a)
        self.add_param("lora_B", np.zeros((out_features, self.rank), weight.dtype))

    def forward(self, x, keep_mask=None):
        """keep_mask: optional bool array shaped like x, the dropout mask to use (tests pass
        one so repeated calls agree); by default one is drawn while training."""
        weight, lora_a, lora_b = self.params["weight"], self.params["lora_A"], self.params["lora_B"]
        x2d = x.reshape(-1, x.shape[-1])
        self.x_shape = x.shape
        self.keep = None
        if self.training and self.dropout > 0:
            keep = (self.rng.random(x.shape) >= self.dropout) if keep_mask is None else keep_mask
            self.keep = keep.reshape(x2d.shape)
            # Inverted dropout: survivors are scaled by 1/(1-p), so the expectation is x.
            x_low = x2d * self.keep * (1.0 / (1.0 - self.dropout))
        else:
            x_low = x2d
        self.x2d, self.x_low = x2d, x_low
        self.u = x_low @ lora_a.T                            # (N, r): the thin middle
        y = x2d @ weight.T
        y += self.scale * (self.u @ lora_b.T)
        return y.reshape(*x.shape[:-1], weight.shape[0])

    def backward(self, dy):
        # y = x W^T + s u B^T with u = x' A^T (x' = dropout(x)):
        #   dB = s dy^T u,   du = s dy B,   dA = du^T x',   dx = dy W + dropout'(du A)
        weight, lora_a, lora_b = self.params["weight"], self.params["lora_A"], self.params["lora_B"]
        dy2d = dy.reshape(-1, dy.shape[-1])
        self.grads["lora_B"] += self.scale * (dy2d.T @ self.u)
        du = self.scale * (dy2d @ lora_b)
        self.grads["lora_A"] += du.T @ self.x_low
        d_low = du @ lora_a
        if self.keep is not None:
            d_low *= self.keep * (1.0 / (1.0 - self.dropout))
        dx = dy2d @ weight
        dx += d_low
        return dx.reshape(self.x_shape)

    def merged_weight(self):
        """W + (alpha / r) B A: the plain weight with the same output (dropout off)."""
        p = self.params
        return p["weight"] + self.scale * (p["lora_B"] @ p["lora_A"])
