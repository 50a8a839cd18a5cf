"""Cross-attention (编码器-解码器注意力, seed 3.1.2): the decoder reads the encoder's output.

In self-attention, queries, keys and values all come from one sequence. In cross-attention
the QUERIES come from the decoder stream x (B, T_target, dim) and the KEYS and VALUES from
the encoder's output, the "memory" (B, T_source, dim): each output position asks "which
source positions matter to me?". Source and target may have different lengths, and padded
source positions are hidden by a mask, so the attention weights form a (T_target, T_source)
map per head: which source word each output token looks at.

Self-attention is the special case memory = x; `SelfAttention` below is exactly that, with a
key/value cache for generation. Unlike LLaMA's attention (attention.py) there is no RoPE: the
original Transformer adds sinusoidal positions to the embeddings once, at the input.

Backward returns two gradients, for x (through the queries) and for the memory (through the
keys and values); the memory's gradient flows back into the encoder.
"""

from .attention import ScaledDotProductAttention
from .linear import Linear
from .module import Module


class CrossAttention(Module):
    """wq (n_heads * head_dim, dim), wk and wv (n_heads * head_dim, memory_dim), wo (dim, n_heads * head_dim).

    forward(x, memory, allowed) -> (B, T_x, dim). `allowed` is a bool mask broadcastable to
    (B, n_heads, T_x, T_memory), True where a query may look; for a source padding mask
    `source_mask` (B, T_source), pass source_mask[:, None, None, :].
    """

    def __init__(self, wq, wk, wv, wo, n_heads):
        super().__init__()
        if wq.shape[0] % n_heads:
            raise ValueError(f"wq has {wq.shape[0]} rows, not divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.head_dim = wq.shape[0] // n_heads
        self.wq = self.add_module("wq", Linear(wq))
        self.wk = self.add_module("wk", Linear(wk))
        self.wv = self.add_module("wv", Linear(wv))
        self.wo = self.add_module("wo", Linear(wo))
        self.attention = ScaledDotProductAttention()
        self.inference_only = False

    def split_heads(self, x):
        """(B, T, n_heads * head_dim) -> (B, n_heads, T, head_dim): heads become a batch axis."""
        batch, seq_len, _ = x.shape
        return x.reshape(batch, seq_len, self.n_heads, self.head_dim).transpose(0, 2, 1, 3)

    def merge_heads(self, x):
        """(B, n_heads, T, head_dim) -> (B, T, n_heads * head_dim)."""
        batch, _, seq_len, _ = x.shape
        return x.transpose(0, 2, 1, 3).reshape(batch, seq_len, self.n_heads * self.head_dim)

    def memory_keys_values(self, memory):
        """The keys and values of the memory, each (B, n_heads, T_memory, head_dim).

        At generation the source does not change, so these are computed once per source and
        passed to every decoding step as `memory_kv` (no backward then).
        """
        return self.split_heads(self.wk.forward(memory)), self.split_heads(self.wv.forward(memory))

    def forward(self, x, memory, allowed=None, memory_kv=None):
        if memory_kv is None:
            keys, values = self.memory_keys_values(memory)
        else:
            keys, values = memory_kv
        self.inference_only = memory_kv is not None
        queries = self.split_heads(self.wq.forward(x))
        out = self.attention.forward(queries, keys, values, allowed)
        return self.wo.forward(self.merge_heads(out))

    @property
    def weights(self):
        """The last forward's attention weights (B, n_heads, T_x, T_memory); rows sum to 1."""
        return self.attention.probs

    def backward(self, dy):
        if self.inference_only:
            raise ValueError("backward after a forward with precomputed keys/values "
                             "(generation only): run forward with the memory to train")
        # out = wo(attention(wq x, wk m, wv m)): the queries carry the gradient to x,
        # the keys and values carry it to the memory m.
        d_out = self.split_heads(self.wo.backward(dy))
        d_queries, d_keys, d_values = self.attention.backward(d_out)
        dx = self.wq.backward(self.merge_heads(d_queries))
        d_memory = self.wk.backward(self.merge_heads(d_keys))
        d_memory += self.wv.backward(self.merge_heads(d_values))
        return dx, d_memory


class SelfAttention(CrossAttention):
    """Attention of a sequence to itself: CrossAttention with memory = x (no RoPE).

    forward(x, allowed) -> (B, T, dim). For generation, `cache` is a (keys, values) pair of
    arrays (B, n_heads, max_len, head_dim): the new positions start_pos.. are written into
    them and the queries attend to every cached position 0..start_pos+T-1 (no backward).
    """

    def forward(self, x, allowed=None, cache=None, start_pos=0):
        if cache is None:
            return super().forward(x, x, allowed)
        cached_keys, cached_values = cache
        end = start_pos + x.shape[1]
        cached_keys[:, :, start_pos:end], cached_values[:, :, start_pos:end] = self.memory_keys_values(x)
        return super().forward(x, None, allowed,
                               memory_kv=(cached_keys[:, :, :end], cached_values[:, :, :end]))

    def backward(self, dy):
        # x is used twice (queries, and keys/values): its gradient is the sum of both.
        dx, d_memory = super().backward(dy)
        return dx + d_memory
