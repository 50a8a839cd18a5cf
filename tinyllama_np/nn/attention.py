"""Attention: softmax(q k^T / sqrt(d)) v, and multi-head attention with grouped-query heads.

Each query position asks "which earlier positions matter to me?": its query vector is
compared with every key vector (a dot product), the scores become weights by a softmax,
and the output is the weighted average of the value vectors.

Multi-head attention runs several such attentions side by side on slices of the model
dimension. Grouped-query attention (GQA, LLaMA 2 70B and LLaMA 3) lets n_heads // n_kv_heads
query heads share one key/value head, which shrinks the KV cache; n_kv_heads == n_heads is
ordinary multi-head attention.
"""

import numpy as np

from .linear import Linear
from .mask import apply_mask, apply_mask_backward, causal_mask
from .module import Module
from .position import RoPE
from .softmax import Softmax


class ScaledDotProductAttention(Module):
    """q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv) -> (..., Tq, dv).

    `allowed` is a boolean mask broadcastable to (..., Tq, Tk), True where a query may look.
    """

    def __init__(self):
        super().__init__()
        self.softmax = Softmax()

    def forward(self, q, k, v, allowed=None):
        # Dividing by sqrt(d) keeps the scores' spread independent of the head size;
        # without it the softmax saturates and its gradient vanishes. Scaling q rather
        # than the scores gives the same numbers and touches Tq*d values, not Tq*Tk.
        self.scale = q.shape[-1] ** -0.5  # a Python float, so float32 stays float32
        q_scaled = q * self.scale
        scores = q_scaled @ k.swapaxes(-1, -2)
        if allowed is not None:
            apply_mask(scores, allowed)
        self.q_scaled, self.k, self.v, self.allowed = q_scaled, k, v, allowed
        self.probs = self.softmax.forward(scores, out=scores)
        return self.probs @ v

    def backward(self, d_out):
        # out = P v  =>  dP = d_out v^T,  dv = P^T d_out
        d_probs = d_out @ self.v.swapaxes(-1, -2)
        dv = self.probs.swapaxes(-1, -2) @ d_out
        d_scores = self.softmax.backward(d_probs, out=d_probs)
        if self.allowed is not None:
            apply_mask_backward(d_scores, self.allowed)
        # scores = (q * scale) k^T  =>  dq = scale * dS k,  dk = dS^T (q * scale)
        dq = d_scores @ self.k
        dq *= self.scale
        dk = d_scores.swapaxes(-1, -2) @ self.q_scaled
        return dq, dk, dv


class CausalAttention(Module):
    """The same attention under a causal mask, computed one block of queries at a time.

    q (..., Tq, d), k and v (..., Tk, d) with Tk >= Tq: query i sits at position
    Tk - Tq + i and sees the keys at positions <= its own. A block of queries needs only the
    keys up to its last query: the score blocks above the diagonal are never computed, which
    saves close to half of the products and of the softmax on long sequences. Only the block
    on the diagonal needs the mask. Each block is ScaledDotProductAttention's math, unchanged.
    """

    def __init__(self, block_size=64):
        super().__init__()
        self.block_size = block_size

    def blocks(self, n_queries, n_keys):
        """(first query, end query, keys seen) for each block of queries."""
        offset = n_keys - n_queries
        return [(start, min(start + self.block_size, n_queries),
                 offset + min(start + self.block_size, n_queries))
                for start in range(0, n_queries, self.block_size)]

    def forward(self, q, k, v):
        self.scale = q.shape[-1] ** -0.5
        q_scaled = q * self.scale
        out = np.empty(q.shape[:-1] + v.shape[-1:], dtype=np.result_type(q, v))
        self.softmaxes = []
        for start, end, seen in self.blocks(q.shape[-2], k.shape[-2]):
            scores = q_scaled[..., start:end, :] @ k[..., :seen, :].swapaxes(-1, -2)
            # The last (end - start) keys are the block's own positions: a triangle.
            apply_mask(scores[..., seen - (end - start):], causal_mask(end - start))
            softmax = Softmax()
            probs = softmax.forward(scores, out=scores)
            self.softmaxes.append(softmax)
            np.matmul(probs, v[..., :seen, :], out=out[..., start:end, :])
        self.q_scaled, self.k, self.v = q_scaled, k, v
        return out

    def backward(self, d_out):
        # Per block, as in ScaledDotProductAttention.backward; keys and values collect
        # the gradients of every block that saw them. Masked probabilities are exactly 0,
        # so their score gradients p * (dp - sum(dp p)) are 0 without a mask.
        q_scaled, k, v = self.q_scaled, self.k, self.v
        dq = np.empty_like(q_scaled)
        dk, dv = np.zeros_like(k), np.zeros_like(v)
        for (start, end, seen), softmax in zip(self.blocks(q_scaled.shape[-2], k.shape[-2]),
                                               self.softmaxes):
            d_block = d_out[..., start:end, :]
            d_probs = d_block @ v[..., :seen, :].swapaxes(-1, -2)
            dv[..., :seen, :] += softmax.probs.swapaxes(-1, -2) @ d_block
            d_scores = softmax.backward(d_probs, out=d_probs)
            np.matmul(d_scores, k[..., :seen, :], out=dq[..., start:end, :])
            dk[..., :seen, :] += d_scores.swapaxes(-1, -2) @ q_scaled[..., start:end, :]
        dq *= self.scale
        self.softmaxes = []
        return dq, dk, dv


def repeat_kv(x, n_rep):
    """(B, T, n_kv_heads, hd) -> (B, T, n_kv_heads * n_rep, hd): query head h uses kv head h // n_rep."""
    return x if n_rep == 1 else np.repeat(x, n_rep, axis=2)


def repeat_kv_backward(dx, n_rep):
    """A kv head was copied to n_rep query heads, so its gradient is the sum over them."""
    if n_rep == 1:
        return dx
    batch, seq_len, n_heads, head_dim = dx.shape
    return dx.reshape(batch, seq_len, n_heads // n_rep, n_rep, head_dim).sum(axis=3)


class MultiHeadAttention(Module):
    """LLaMA's attention: projections wq, wk, wv, wo (no bias), RoPE on q and k, GQA.

    x (B, T, dim) -> (B, T, dim). Parameter names follow Meta: wq.weight is
    (n_heads * head_dim, dim), wk.weight and wv.weight are (n_kv_heads * head_dim, dim).
    """

    def __init__(self, wq, wk, wv, wo, n_heads, n_kv_heads, rotations):
        super().__init__()
        if n_heads % n_kv_heads:
            raise ValueError(f"n_heads ({n_heads}) must be divisible by n_kv_heads ({n_kv_heads})")
        self.n_heads, self.n_kv_heads = n_heads, n_kv_heads
        self.head_dim = wq.shape[0] // n_heads
        self.wq = self.add_module("wq", Linear(wq))
        self.wk = self.add_module("wk", Linear(wk))
        self.wv = self.add_module("wv", Linear(wv))
        self.wo = self.add_module("wo", Linear(wo))
        self.rope_q = RoPE(rotations)
        self.rope_k = RoPE(rotations)
        self.attention = ScaledDotProductAttention()
        self.causal_attention = CausalAttention()

    def forward(self, x, allowed=None, start_pos=0, cache=None):
        """x holds positions start_pos..start_pos+T-1.

        allowed: a boolean mask (see ScaledDotProductAttention), None (every query sees
        every key), or "causal": each position sees itself and the positions before it,
        computed by CausalAttention, which skips the blocks above the diagonal.

        cache (inference only, no backward): this layer's (keys, values) arrays from a
        KVCache. The new keys/values are written into them at those positions, and the
        queries attend to every cached position 0..start_pos+T-1.
        """
        batch, seq_len, _ = x.shape
        n_rep = self.n_heads // self.n_kv_heads
        q = self.wq.forward(x).reshape(batch, seq_len, self.n_heads, self.head_dim)
        k = self.wk.forward(x).reshape(batch, seq_len, self.n_kv_heads, self.head_dim)
        v = self.wv.forward(x).reshape(batch, seq_len, self.n_kv_heads, self.head_dim)
        q = self.rope_q.forward(q, start_pos)
        k = self.rope_k.forward(k, start_pos)
        if cache is not None:
            cached_keys, cached_values = cache
            end = start_pos + seq_len
            cached_keys[:, start_pos:end] = k
            cached_values[:, start_pos:end] = v
            k, v = cached_keys[:, :end], cached_values[:, :end]
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
        # Heads become a batch axis: (B, T, H, hd) -> (B, H, T, hd).
        q, k, v = q.transpose(0, 2, 1, 3), k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)
        if isinstance(allowed, str) and allowed == "causal":
            self.used = self.causal_attention
            out = self.causal_attention.forward(q, k, v)
        else:
            self.used = self.attention
            out = self.attention.forward(q, k, v, allowed)
        out = out.transpose(0, 2, 1, 3).reshape(batch, seq_len, self.n_heads * self.head_dim)
        return self.wo.forward(out)

    def backward(self, dy):
        batch, seq_len, _ = dy.shape
        n_rep = self.n_heads // self.n_kv_heads
        d_out = self.wo.backward(dy).reshape(batch, seq_len, self.n_heads, self.head_dim)
        dq, dk, dv = self.used.backward(d_out.transpose(0, 2, 1, 3))
        dq, dk, dv = (d.transpose(0, 2, 1, 3) for d in (dq, dk, dv))
        dk, dv = repeat_kv_backward(dk, n_rep), repeat_kv_backward(dv, n_rep)
        dq = self.rope_q.backward(dq).reshape(batch, seq_len, -1)
        dk = self.rope_k.backward(dk).reshape(batch, seq_len, -1)
        dv = dv.reshape(batch, seq_len, -1)
        return self.wq.backward(dq) + self.wk.backward(dk) + self.wv.backward(dv)
