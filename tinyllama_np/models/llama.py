"""LLaMA: the components composed into a decoder-only, pre-norm Transformer.

    tokens -> tok_embeddings -> n_layers x TransformerBlock -> norm -> output -> logits

    TransformerBlock (pre-norm: normalise the input of each sub-layer, not its output):
        h   = x + attention(attention_norm(x))
        out = h + feed_forward(ffn_norm(h))

Parameter names and shapes are those of Meta's checkpoints, so real weights load as-is.

Memory order: a weight matrix W has Meta's shape (out, in), but it is stored column by column
(NumPy's order "F"), so that W.T, the (in, out) matrix that x @ W.T multiplies by, lies in
memory row by row. Training's matrix products run as fast either way. Decoding, one token
at a time, multiplies a vector by every matrix, and OpenBLAS streams a matrix stored this way
faster: on a 2-core AMD EPYC, dim288's decode went from 0.62-0.67 of the speed of the
reference loop in `tinyllama-np bench --suite decode` (which stores its matrices transposed)
to 0.83-0.92. Indexing is unaffected: W[i, j] is the same number in either order.
"""

from dataclasses import asdict, dataclass

import numpy as np

from ..nn import (CrossEntropyLoss, Embedding, Linear, Module, MultiHeadAttention, RMSNorm,
                 SwiGLU, causal_mask, rope_rotations)
from ..nn.position import check_rope_scaling

# LLaMA rounds the SwiGLU hidden size up to a multiple of this. Meta's large models use 256;
# llama2.c's small models use 32, which keeps small models small.
HIDDEN_MULTIPLE_OF = 32


def default_hidden_dim(dim, multiple_of=HIDDEN_MULTIPLE_OF):
    """LLaMA's rule: 2/3 of 4*dim (so SwiGLU's three matrices cost what an MLP's two would),
    rounded up to a multiple of `multiple_of`."""
    hidden = int(2 * (4 * dim) / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


@dataclass
class LlamaConfig:
    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int = None  # None: same as n_heads (plain multi-head attention)
    hidden_dim: int = None  # None: LLaMA's rule, see default_hidden_dim
    max_seq_len: int = 256
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    tie_embeddings: bool = False
    rope_scaling: dict = None  # None (plain RoPE) or see nn/position.py's scaled_frequencies

    def __post_init__(self):
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        if self.hidden_dim is None:
            self.hidden_dim = default_hidden_dim(self.dim)
        for name in ("vocab_size", "dim", "n_layers", "n_heads", "n_kv_heads", "hidden_dim",
                     "max_seq_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.dim % self.n_heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by n_heads ({self.n_heads})")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads ({self.n_heads}) must be divisible by "
                             f"n_kv_heads ({self.n_kv_heads})")
        if (self.dim // self.n_heads) % 2:
            raise ValueError(f"head dimension dim / n_heads = {self.dim // self.n_heads} must be "
                             "even (RoPE rotates pairs)")
        if not self.norm_eps > 0:
            raise ValueError(f"norm_eps must be positive, got {self.norm_eps}")
        if not self.rope_theta > 0:
            raise ValueError(f"rope_theta must be positive, got {self.rope_theta}")
        check_rope_scaling(self.rope_scaling, self.dim // self.n_heads)

    @property
    def head_dim(self):
        return self.dim // self.n_heads

    def to_dict(self):
        return asdict(self)


class TransformerBlock(Module):
    def __init__(self, attention_norm, attention, ffn_norm, feed_forward):
        super().__init__()
        self.attention_norm = self.add_module("attention_norm", attention_norm)
        self.attention = self.add_module("attention", attention)
        self.ffn_norm = self.add_module("ffn_norm", ffn_norm)
        self.feed_forward = self.add_module("feed_forward", feed_forward)

    def forward(self, x, allowed=None, start_pos=0, cache=None):
        h = x + self.attention.forward(self.attention_norm.forward(x), allowed, start_pos, cache)
        return h + self.feed_forward.forward(self.ffn_norm.forward(h))

    def backward(self, d_out):
        # A residual connection passes its gradient through unchanged, plus the branch's.
        d_h = d_out + self.ffn_norm.backward(self.feed_forward.backward(d_out))
        return d_h + self.attention_norm.backward(self.attention.backward(d_h))


class Llama(Module):
    def __init__(self, config, seed=0, dtype=np.float32, random_init=True):
        """random_init=False skips the random initialisation: weight matrices start at zero
        (norm scales at one), ready to be overwritten in place by a checkpoint loader. Zeros
        cost no memory until written, so a large model is not held twice while loading."""
        super().__init__()
        self.config = config
        self.dtype = np.dtype(dtype)
        if not np.issubdtype(self.dtype, np.floating):
            raise ValueError(f"dtype must be a floating-point type, got {self.dtype}")
        rng = np.random.default_rng(seed)
        c = config

        # Weight matrices are stored column by column (order "F", see the module docstring).
        def normal(shape, std=0.02, order="F"):
            if not random_init:
                return np.zeros(shape, self.dtype, order=order)
            return (rng.standard_normal(shape) * std).astype(self.dtype, order=order)

        # The projections that write into the residual stream (wo, w2) start smaller, so the
        # stream's variance does not grow with depth: std 0.02 / sqrt(2 * n_layers).
        residual_std = 0.02 / np.sqrt(2 * c.n_layers)
        rotations = rope_rotations(c.head_dim, c.max_seq_len, c.rope_theta, c.rope_scaling)

        # The embedding table is read row by row (one row per token), so it is stored row by
        # row, unless it is also the output matrix.
        embedding_order = "F" if c.tie_embeddings else "C"
        self.tok_embeddings = self.add_module(
            "tok_embeddings", Embedding(normal((c.vocab_size, c.dim), order=embedding_order)))
        self.layers = []
        for i in range(c.n_layers):
            attention = MultiHeadAttention(
                wq=normal((c.n_heads * c.head_dim, c.dim)),
                wk=normal((c.n_kv_heads * c.head_dim, c.dim)),
                wv=normal((c.n_kv_heads * c.head_dim, c.dim)),
                wo=normal((c.dim, c.n_heads * c.head_dim), residual_std),
                n_heads=c.n_heads, n_kv_heads=c.n_kv_heads, rotations=rotations)
            feed_forward = SwiGLU(w1=normal((c.hidden_dim, c.dim)),
                                  w2=normal((c.dim, c.hidden_dim), residual_std),
                                  w3=normal((c.hidden_dim, c.dim)))
            block = TransformerBlock(RMSNorm(np.ones(c.dim, self.dtype), c.norm_eps), attention,
                                     RMSNorm(np.ones(c.dim, self.dtype), c.norm_eps), feed_forward)
            self.layers.append(self.add_module(f"layers.{i}", block))
        self.norm = self.add_module("norm", RMSNorm(np.ones(c.dim, self.dtype), c.norm_eps))
        if c.tie_embeddings:
            # One matrix both reads tokens in and scores them out; both uses add to one gradient.
            embedding = self.tok_embeddings
            self.output = Linear(embedding.params["weight"], embedding.grads["weight"])
        else:
            self.output = self.add_module("output", Linear(normal((c.vocab_size, c.dim))))
        self.loss_fn = CrossEntropyLoss()
        self.used_cache = False  # True after a forward with a KV cache, which has no backward
        self.hidden_shape, self.positions = None, None  # set by forward, for backward

    def check_tokens(self, tokens, start_pos=0):
        tokens = np.asarray(tokens)
        if tokens.ndim != 2:
            raise ValueError(f"tokens must have shape (batch, seq_len), got shape {tokens.shape}")
        if not np.issubdtype(tokens.dtype, np.integer):
            raise ValueError(f"tokens must be integers, got dtype {tokens.dtype}")
        if tokens.shape[1] == 0:
            raise ValueError("tokens must hold at least one position")
        if start_pos + tokens.shape[1] > self.config.max_seq_len:
            raise ValueError(f"sequence of {start_pos + tokens.shape[1]} positions is longer "
                             f"than max_seq_len={self.config.max_seq_len}")
        return tokens

    def forward(self, tokens, attention_mask=None, cache=None, positions=None):
        """tokens: ints (B, T) -> logits (B, T, vocab_size).

        attention_mask: optional bool (B, T), False at padding positions, which are then
        hidden from every other position.
        cache: optional KVCache, for generation (inference only: no backward). The tokens
        are then the positions cache.length.. of the text: the earlier positions' keys and
        values come from the cache, and the new ones are added to it (see kv_cache.py).
        positions: optional (rows, columns) index arrays, e.g. np.nonzero(targets >= 0):
        the logits of those positions only, (N, vocab_size). The final norm and the
        classifier, often the largest matrix product, then run on N positions, not B * T:
        fine-tuning on answers needs a few logits per conversation.
        """
        start_pos = 0 if cache is None else cache.length
        tokens = self.check_tokens(tokens, start_pos)
        batch, seq_len = tokens.shape
        if cache is not None:
            self.check_cache(cache, batch, seq_len, attention_mask)
        # A single query (one new token) may look at every key up to it: no mask needed.
        allowed = "causal" if seq_len > 1 else None
        if attention_mask is not None:
            attention_mask = np.asarray(attention_mask, dtype=bool)
            if attention_mask.shape != tokens.shape:
                raise ValueError(f"attention_mask shape {attention_mask.shape} does not match "
                                 f"tokens shape {tokens.shape}")
            allowed = causal_mask(seq_len)[None, None, :, :] & attention_mask[:, None, None, :]
        x = self.tok_embeddings.forward(tokens)
        for index, layer in enumerate(self.layers):
            x = layer.forward(x, allowed, start_pos, None if cache is None else cache.layer(index))
        if cache is not None:
            cache.length += seq_len
        self.used_cache = cache is not None
        self.hidden_shape, self.positions = x.shape, positions
        if positions is not None:
            x = x[positions]
        return self.output.forward(self.norm.forward(x))

    def check_cache(self, cache, batch, seq_len, attention_mask):
        if attention_mask is not None:
            raise ValueError("attention_mask cannot be combined with a KV cache")
        if cache.batch_size != batch:
            raise ValueError(f"the KV cache holds {cache.batch_size} rows but tokens have "
                             f"batch size {batch}")
        if cache.length + seq_len > cache.max_len:
            raise ValueError(f"the KV cache has room for {cache.max_len} positions; "
                             f"{cache.length} are filled and {seq_len} more do not fit")

    def backward(self, d_logits):
        """Adds every parameter's gradient into self.grads; tokens get no gradient."""
        if self.used_cache:
            raise ValueError("backward after a forward with a KV cache: the cache is for "
                             "generation only; run forward without it to train")
        dx = self.norm.backward(self.output.backward(d_logits))
        if self.positions is not None:  # the other positions' outputs had no effect
            selected = dx
            dx = np.zeros(self.hidden_shape, dtype=selected.dtype)
            np.add.at(dx, self.positions, selected)  # add: a position chosen twice gets both
        for layer in reversed(self.layers):
            dx = layer.backward(dx)
        self.tok_embeddings.backward(dx)

    def loss_and_grads(self, tokens, targets, attention_mask=None):
        """Mean cross-entropy of predicting `targets` (-1 = ignore) and its gradients.

        The returned grads dict is the model's own buffer (self.grads), reset and refilled
        by every call: copy it if you need to keep it.
        """
        self.zero_grad()
        logits = self.forward(tokens, attention_mask)
        loss = self.loss_fn.forward(logits, targets, overwrite_logits=True)
        self.backward(self.loss_fn.backward(1.0))
        return loss, self.grads

    def num_params(self):
        return sum(p.size for p in self.params.values())
