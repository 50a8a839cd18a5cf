"""Positional information: RoPE (LLaMA) and sinusoidal encoding (the original Transformer).

Attention by itself is blind to order: permuting the keys permutes nothing in the output
but the order of the sum. Positions must be put in.

* Sinusoidal encoding ADDS a fixed vector per position to the embeddings (once, at the
  input). The model must learn to read positions out of the mixture.
* RoPE (rotary position embedding) ROTATES each query and key, in every layer. Consecutive
  pairs (x[2i], x[2i+1]) are read as one complex number x[2i] + i*x[2i+1] and multiplied by
  e^{i * pos * theta^(-2i/d)}, so the dot product q.k of a query at position m and a key at
  position n depends on the positions only through m - n (a rotation by m, a rotation by n,
  and rotations compose). This is Meta's convention (interleaved pairs); Hugging Face's
  rotate-half convention pairs x[i] with x[i + d/2] instead.
"""

import numpy as np

from .module import Module


def rope_rotations(head_dim, max_seq_len, theta=10000.0, scaling=None):
    """The unit complex numbers e^{i * pos * freq_j}: shape (max_seq_len, head_dim // 2).

    freq_j = theta^(-2j / head_dim): pair 0 turns one radian per position, the last pair
    barely moves, so together they encode both short and long distances.
    scaling: None, or a RoPE scaling that stretches a model's context (scaled_frequencies).
    """
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head dimension, got {head_dim}")
    freqs = 1.0 / theta ** (np.arange(0, head_dim, 2) / head_dim)
    if scaling is not None:
        freqs = scaled_frequencies(freqs, scaling)
    angles = np.outer(np.arange(max_seq_len), freqs)
    return np.exp(1j * angles)


ROPE_SCALING_FIELDS = {
    "linear": ("factor",),
    "llama3": ("factor", "low_freq_factor", "high_freq_factor",
               "original_max_position_embeddings"),
    "freq_factors": ("factors",),
}


def check_rope_scaling(scaling, head_dim):
    """Raise ValueError unless `scaling` is None or one of ROPE_SCALING_FIELDS, complete."""
    if scaling is None:
        return
    kind = scaling.get("rope_type") if isinstance(scaling, dict) else None
    if kind not in ROPE_SCALING_FIELDS:
        raise ValueError(f"RoPE scaling {scaling!r:.100} is not implemented (we implement "
                         f"{', '.join(ROPE_SCALING_FIELDS)})")
    if set(scaling) != {"rope_type", *ROPE_SCALING_FIELDS[kind]}:
        raise ValueError(f"RoPE scaling {kind!r} needs exactly the fields "
                         f"{', '.join(ROPE_SCALING_FIELDS[kind])}, got {sorted(scaling)}")
    values = scaling["factors"] if kind == "freq_factors" else \
        [scaling[name] for name in ROPE_SCALING_FIELDS[kind]]
    if kind == "freq_factors" and len(values) != head_dim // 2:
        raise ValueError(f"RoPE freq_factors needs {head_dim // 2} numbers (head_dim / 2), "
                         f"got {len(values)}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
               for v in values):
        raise ValueError(f"RoPE scaling {kind!r}: every value must be a positive number")
    if kind == "llama3" and not scaling["high_freq_factor"] > scaling["low_freq_factor"]:
        raise ValueError("RoPE scaling llama3 needs high_freq_factor > low_freq_factor")


def scaled_frequencies(freqs, scaling):
    """The frequencies of a model trained for a longer context than its base RoPE.

    linear        every frequency / factor (positions squeezed: position p acts as p/factor).
    llama3        LLaMA 3.1's rule, by wavelength 2*pi/freq against the original context L:
                  wavelengths shorter than L / high_freq_factor are kept (they resolve
                  nearby tokens), those longer than L / low_freq_factor are divided by
                  factor, and in between the two are blended linearly in L / wavelength.
    freq_factors  freq_j / factors[j]: the divisors llama3 computes, as GGUF stores them
                  (the tensor rope_freqs.weight).
    """
    kind = scaling["rope_type"]
    if kind == "linear":
        return freqs / scaling["factor"]
    if kind == "freq_factors":
        return freqs / np.asarray(scaling["factors"], dtype=np.float64)
    factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
    context = scaling["original_max_position_embeddings"]
    wavelength = 2 * np.pi / freqs
    smooth = np.clip((context / wavelength - low) / (high - low), 0.0, 1.0)
    # smooth = 1: short wavelengths, kept; smooth = 0: long ones, divided by factor.
    return (1 - smooth) * freqs / factor + smooth * freqs


class RoPE(Module):
    """Rotates x of shape (batch, seq, heads, head_dim) by the angles of its positions."""

    def __init__(self, rotations):
        super().__init__()
        self.rotations = rotations  # from rope_rotations(); may be shared by many layers

    def forward(self, x, start_pos=0):
        seq_len = x.shape[1]
        if start_pos + seq_len > len(self.rotations):
            raise ValueError(f"positions up to {start_pos + seq_len} exceed the RoPE table "
                             f"of {len(self.rotations)} positions (max_seq_len)")
        complex_dtype = np.result_type(x.dtype, np.complex64)  # complex64 for float32
        # (seq, 1, head_dim/2): the same rotation for every batch row and head.
        self.rotation = self.rotations[start_pos:start_pos + seq_len, None, :].astype(complex_dtype)
        pairs = np.ascontiguousarray(x).view(complex_dtype)  # x[2i] + i*x[2i+1]
        return (pairs * self.rotation).view(x.dtype)

    def backward(self, dy):
        # y = x * e^{ia} is a rotation; the gradient rotates back: dx = dy * e^{-ia}
        complex_dtype = self.rotation.dtype
        pairs = np.ascontiguousarray(dy).view(complex_dtype)
        return (pairs * np.conj(self.rotation)).view(dy.dtype)


def sinusoidal_encoding(max_seq_len, dim, base=10000.0):
    """PE[pos, 2i] = sin(pos / base^(2i/dim)),  PE[pos, 2i+1] = cos(pos / base^(2i/dim))."""
    if dim % 2:
        raise ValueError(f"sinusoidal encoding needs an even dimension, got {dim}")
    angles = np.outer(np.arange(max_seq_len), 1.0 / base ** (np.arange(0, dim, 2) / dim))
    table = np.empty((max_seq_len, dim))
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles)
    return table


class SinusoidalPositions(Module):
    """Adds the sinusoidal table to x of shape (batch, seq, dim). No parameters."""

    def __init__(self, table):
        super().__init__()
        self.table = table

    def forward(self, x, start_pos=0):
        seq_len = x.shape[1]
        if start_pos + seq_len > len(self.table):
            raise ValueError(f"positions up to {start_pos + seq_len} exceed the table "
                             f"of {len(self.table)} positions")
        return x + self.table[start_pos:start_pos + seq_len].astype(x.dtype)

    def backward(self, dy):
        # y = x + PE  =>  dx = dy (the table is a constant)
        return dy


class LearnedPositions(Module):
    """Adds a learned vector per position (BERT, GPT-2): weight (max_seq_len, dim)."""

    def __init__(self, weight):
        super().__init__()
        self.add_param("weight", weight)

    def forward(self, x, start_pos=0):
        seq_len = x.shape[1]
        if start_pos + seq_len > len(self.params["weight"]):
            raise ValueError(f"positions up to {start_pos + seq_len} exceed the table "
                             f"of {len(self.params['weight'])} positions")
        self.start_pos = start_pos
        return x + self.params["weight"][start_pos:start_pos + seq_len]

    def backward(self, dy):
        # y[b, t] = x[b, t] + W[t]  =>  dx = dy,  dW[t] = sum over the batch of dy[b, t]
        seq_len = dy.shape[1]
        self.grads["weight"][self.start_pos:self.start_pos + seq_len] += dy.sum(axis=0)
        return dy
