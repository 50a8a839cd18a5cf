"""Attention masks: which keys each query may look at.

A mask here is a boolean array, True where attention is ALLOWED, broadcastable to the
scores' shape (batch, heads, queries, keys).

* The causal mask lets position i see only positions <= i, so a decoder cannot peek at
  the token it must predict. It is what makes a Transformer a language model.
* The padding mask hides padded key positions, so sequences of different lengths can
  share one batch.

Masked scores are set to the most negative finite number before the softmax, so their
probability is exactly 0. (A finite number rather than -inf keeps a row with nothing
allowed, such as a padding query, finite: it becomes a harmless uniform average.)
"""

import numpy as np


def causal_mask(seq_len, start_pos=0):
    """(seq_len, start_pos + seq_len): query i, at absolute position start_pos + i, sees keys <= it."""
    query_pos = start_pos + np.arange(seq_len)[:, None]
    key_pos = np.arange(start_pos + seq_len)[None, :]
    return key_pos <= query_pos


def padding_mask(lengths, seq_len):
    """(batch, seq_len): True for the first lengths[b] positions of row b (right padding)."""
    lengths = np.asarray(lengths)
    if lengths.ndim != 1:
        raise ValueError(f"lengths must be 1-D (one per sequence), got shape {lengths.shape}")
    if np.any(lengths < 0) or np.any(lengths > seq_len):
        raise ValueError(f"lengths must lie in [0, {seq_len}], got {lengths.tolist()}")
    return np.arange(seq_len)[None, :] < lengths[:, None]


def apply_mask(scores, allowed):
    """Forward, in place: scores where allowed, the most negative float elsewhere."""
    np.copyto(scores, np.finfo(scores.dtype).min, where=np.logical_not(allowed))
    return scores


def apply_mask_backward(d_scores, allowed):
    """Backward, in place: a masked score was replaced by a constant, so its gradient is 0."""
    np.multiply(d_scores, allowed, out=d_scores)
    return d_scores
