"""The KV cache: remember every layer's keys and values, so generation reads each token once.

A decoder predicts token t+1 from tokens 0..t. Run naively, generating N tokens runs the
whole model over 1, 2, ..., N positions: O(N^2) work. But a position's key and value
vectors never change once computed (causal attention: later tokens cannot affect earlier
positions). So we compute them once and keep them:

    prefill:  run the prompt (T tokens) in one forward pass, storing keys/values 0..T-1
    decode:   run ONE new token at position start_pos; its query attends to the cached
              keys/values 0..start_pos (its own included)

Each step then costs one position's work, however long the text is.

The cache holds n_kv_heads heads, not n_heads: with grouped-query attention the query
heads of a group share one cached key/value head, which is why GQA shrinks this cache.
The arrays are allocated once, (batch, max_len, n_kv_heads, head_dim) per layer, and filled
in place; `length` counts the positions filled so far.
"""

import numpy as np


class KVCache:
    def __init__(self, config, batch_size=1, dtype=np.float32, max_len=None):
        """max_len: positions to make room for (default: the model's max_seq_len)."""
        max_len = config.max_seq_len if max_len is None else max_len
        if not 1 <= max_len <= config.max_seq_len:
            raise ValueError(f"max_len must lie in [1, {config.max_seq_len}] "
                             f"(max_seq_len), got {max_len}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        shape = (batch_size, max_len, config.n_kv_heads, config.head_dim)
        self.keys = [np.zeros(shape, dtype) for _ in range(config.n_layers)]
        self.values = [np.zeros(shape, dtype) for _ in range(config.n_layers)]
        self.max_len = max_len
        self.length = 0  # positions 0..length-1 are filled

    @property
    def batch_size(self):
        return self.keys[0].shape[0]

    def layer(self, index):
        """Layer `index`'s (keys, values) arrays, which its attention fills in place."""
        return self.keys[index], self.values[index]

    def reorder(self, rows):
        """Row i of the cache becomes old row rows[i] (beam search: a beam continues a parent).

        `rows` may repeat rows or change their number (one prompt row -> num_beams beams).
        Only the filled positions are copied.
        """
        rows = np.asarray(rows)
        for arrays in (self.keys, self.values):
            for index, old in enumerate(arrays):
                new = np.empty((len(rows),) + old.shape[1:], old.dtype)
                new[:, :self.length] = old[rows, :self.length]
                arrays[index] = new

    def nbytes(self):
        return sum(a.nbytes for a in self.keys) + sum(a.nbytes for a in self.values)
