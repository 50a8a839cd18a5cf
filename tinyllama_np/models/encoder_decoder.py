"""The original Transformer (Vaswani et al. 2017, seed 3.1): an encoder and a decoder.

    source -> embeddings + positions -> n_encoder_layers x EncoderBlock -> memory
    target_in -> embeddings + positions -> n_decoder_layers x DecoderBlock(memory) -> output -> logits

    EncoderBlock (编码器): self-attention over the whole source (padding hidden), then an MLP.
    DecoderBlock (解码器): causal self-attention over the target so far, then cross-attention
        (编码器-解码器注意力) whose queries come from the target and keys/values from the
        memory, then an MLP.

Each sub-layer sits in a residual connection with a LayerNorm, either after the sum
(post-norm, the 2017 paper: y = norm(x + sublayer(x))) or before the sub-layer
(pre-norm, norm_first=True: y = x + sublayer(norm(x)), plus a final norm after each stack;
it trains more stably without warm-up, and is what GPT-2 and LLaMA use).

Compared with LLaMA (llama.py): LayerNorm, not RMSNorm; positions added once at the input
(sinusoidal or learned), not RoPE in every layer; a ReLU or GELU MLP, not SwiGLU; and the
encoder and the cross-attention, which LLaMA, a decoder-only model, does not have. Like
LLaMA (and unlike the paper) the projections have no biases; the norms do.
"""

from dataclasses import asdict, dataclass

import numpy as np

from ..nn import (MLP, CrossEntropyLoss, CrossAttention, Embedding, LayerNorm, LearnedPositions,
                 Linear, Module, SelfAttention, SinusoidalPositions, causal_mask,
                 sinusoidal_encoding)


@dataclass
class EncoderDecoderConfig:
    src_vocab_size: int
    tgt_vocab_size: int
    dim: int
    n_heads: int
    n_encoder_layers: int
    n_decoder_layers: int
    hidden_dim: int
    max_seq_len: int = 256
    norm_first: bool = False  # False: post-norm (2017); True: pre-norm
    activation: str = "relu"  # "relu" (2017) or "gelu"
    tie_embeddings: bool = False  # the output projection reuses the target embedding
    share_embeddings: bool = False  # source and target use one embedding (one vocabulary)
    positions: str = "sinusoidal"  # or "learned"
    scale_embeddings: bool = True  # multiply embeddings by sqrt(dim), as in the paper
    norm_eps: float = 1e-5

    def __post_init__(self):
        for name in ("src_vocab_size", "tgt_vocab_size", "dim", "n_heads", "n_encoder_layers",
                     "n_decoder_layers", "hidden_dim", "max_seq_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.dim % self.n_heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by n_heads ({self.n_heads})")
        if self.positions == "sinusoidal" and self.dim % 2:
            raise ValueError(f"sinusoidal positions need an even dim, got {self.dim}")
        if self.activation not in ("relu", "gelu"):
            raise ValueError(f"activation must be 'relu' or 'gelu', got {self.activation!r}")
        if self.positions not in ("sinusoidal", "learned"):
            raise ValueError(f"positions must be 'sinusoidal' or 'learned', got {self.positions!r}")
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError(f"share_embeddings needs one vocabulary, but src_vocab_size="
                             f"{self.src_vocab_size} and tgt_vocab_size={self.tgt_vocab_size}")
        if not self.norm_eps > 0:
            raise ValueError(f"norm_eps must be positive, got {self.norm_eps}")

    @property
    def head_dim(self):
        return self.dim // self.n_heads

    def to_dict(self):
        return asdict(self)


class EncoderBlock(Module):
    def __init__(self, self_attention, attention_norm, feed_forward, ffn_norm, norm_first):
        super().__init__()
        self.self_attention = self.add_module("self_attention", self_attention)
        self.attention_norm = self.add_module("attention_norm", attention_norm)
        self.feed_forward = self.add_module("feed_forward", feed_forward)
        self.ffn_norm = self.add_module("ffn_norm", ffn_norm)
        self.norm_first = norm_first

    def forward(self, x, allowed=None):
        if self.norm_first:
            h = x + self.self_attention.forward(self.attention_norm.forward(x), allowed)
            return h + self.feed_forward.forward(self.ffn_norm.forward(h))
        h = self.attention_norm.forward(x + self.self_attention.forward(x, allowed))
        return self.ffn_norm.forward(h + self.feed_forward.forward(h))

    def backward(self, d_out):
        # A residual passes its gradient through unchanged, plus the branch's; a norm after
        # the sum (post-norm) transforms both.
        if self.norm_first:
            d_h = d_out + self.ffn_norm.backward(self.feed_forward.backward(d_out))
            return d_h + self.attention_norm.backward(self.self_attention.backward(d_h))
        d_sum = self.ffn_norm.backward(d_out)
        d_h = d_sum + self.feed_forward.backward(d_sum)
        d_sum = self.attention_norm.backward(d_h)
        return d_sum + self.self_attention.backward(d_sum)


class DecoderBlock(Module):
    def __init__(self, self_attention, self_attention_norm, cross_attention, cross_attention_norm,
                 feed_forward, ffn_norm, norm_first):
        super().__init__()
        self.self_attention = self.add_module("self_attention", self_attention)
        self.self_attention_norm = self.add_module("self_attention_norm", self_attention_norm)
        self.cross_attention = self.add_module("cross_attention", cross_attention)
        self.cross_attention_norm = self.add_module("cross_attention_norm", cross_attention_norm)
        self.feed_forward = self.add_module("feed_forward", feed_forward)
        self.ffn_norm = self.add_module("ffn_norm", ffn_norm)
        self.norm_first = norm_first

    def forward(self, x, memory, self_allowed=None, cross_allowed=None, cache=None, start_pos=0,
                memory_kv=None):
        """cache, start_pos, memory_kv: generation only (see generation/seq2seq.py)."""
        if self.norm_first:
            h1 = x + self.self_attention.forward(self.self_attention_norm.forward(x), self_allowed,
                                                 cache, start_pos)
            h2 = h1 + self.cross_attention.forward(self.cross_attention_norm.forward(h1), memory,
                                                   cross_allowed, memory_kv)
            return h2 + self.feed_forward.forward(self.ffn_norm.forward(h2))
        h1 = self.self_attention_norm.forward(
            x + self.self_attention.forward(x, self_allowed, cache, start_pos))
        h2 = self.cross_attention_norm.forward(
            h1 + self.cross_attention.forward(h1, memory, cross_allowed, memory_kv))
        return self.ffn_norm.forward(h2 + self.feed_forward.forward(h2))

    def backward(self, d_out):
        """-> (d_x, d_memory)."""
        if self.norm_first:
            d_h2 = d_out + self.ffn_norm.backward(self.feed_forward.backward(d_out))
            d_cross, d_memory = self.cross_attention.backward(d_h2)
            d_h1 = d_h2 + self.cross_attention_norm.backward(d_cross)
            return d_h1 + self.self_attention_norm.backward(self.self_attention.backward(d_h1)), d_memory
        d_sum = self.ffn_norm.backward(d_out)
        d_h2 = d_sum + self.feed_forward.backward(d_sum)
        d_sum = self.cross_attention_norm.backward(d_h2)
        d_cross, d_memory = self.cross_attention.backward(d_sum)
        d_h1 = d_sum + d_cross
        d_sum = self.self_attention_norm.backward(d_h1)
        return d_sum + self.self_attention.backward(d_sum), d_memory


class TokenInput(Module):
    """Token embedding (times sqrt(dim) if scaled) plus positions: ids (B, T) -> (B, T, dim)."""

    def __init__(self, embedding, positions, scale):
        super().__init__()
        self.embedding = self.add_module("embedding", embedding)
        self.positions = self.add_module("positions", positions)
        self.scale = scale

    def forward(self, tokens, start_pos=0):
        return self.positions.forward(self.embedding.forward(tokens) * self.scale, start_pos)

    def backward(self, dy):
        self.embedding.backward(self.positions.backward(dy) * self.scale)


def check_token_ids(tokens, vocab_size, what):
    tokens = np.asarray(tokens)
    if tokens.ndim != 2:
        raise ValueError(f"{what} must have shape (batch, seq_len), got shape {tokens.shape}")
    if not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"{what} must be integers, got dtype {tokens.dtype}")
    if tokens.shape[1] == 0:
        raise ValueError(f"{what} must hold at least one position")
    if tokens.min() < 0 or tokens.max() >= vocab_size:
        bad = tokens[(tokens < 0) | (tokens >= vocab_size)][0]
        raise ValueError(f"{what} token id {bad} is out of range [0, {vocab_size})")
    return tokens


class EncoderDecoder(Module):
    def __init__(self, config, seed=0, dtype=np.float32):
        super().__init__()
        self.config = c = config
        self.dtype = np.dtype(dtype)
        if not np.issubdtype(self.dtype, np.floating):
            raise ValueError(f"dtype must be a floating-point type, got {self.dtype}")
        rng = np.random.default_rng(seed)

        def matrix(out_features, in_features):
            # Glorot (Xavier) normal: keeps the variance of activations and gradients alike.
            std = np.sqrt(2.0 / (in_features + out_features))
            return (rng.standard_normal((out_features, in_features)) * std).astype(self.dtype)

        def embedding(vocab_size):
            # std dim^-0.5, so that embedding * sqrt(dim) has unit variance, like the positions.
            return (rng.standard_normal((vocab_size, c.dim)) * c.dim ** -0.5).astype(self.dtype)

        def norm():
            return LayerNorm(np.ones(c.dim, self.dtype), np.zeros(c.dim, self.dtype), c.norm_eps)

        def positions():
            if c.positions == "learned":
                return LearnedPositions((rng.standard_normal((c.max_seq_len, c.dim)) * 0.02).astype(self.dtype))
            return SinusoidalPositions(sinusoidal_encoding(c.max_seq_len, c.dim))

        def attention(kind):
            return kind(matrix(c.dim, c.dim), matrix(c.dim, c.dim), matrix(c.dim, c.dim),
                        matrix(c.dim, c.dim), c.n_heads)

        def feed_forward():
            return MLP(matrix(c.hidden_dim, c.dim), matrix(c.dim, c.hidden_dim), c.activation)

        scale = float(np.sqrt(c.dim)) if c.scale_embeddings else 1.0
        source_embedding = Embedding(embedding(c.src_vocab_size))
        self.source_input = self.add_module("source", TokenInput(source_embedding, positions(), scale))
        if c.share_embeddings:
            # One matrix for both languages: the target reads the same array and gradient buffer.
            target_embedding = Embedding(source_embedding.params["weight"], source_embedding.grads["weight"])
        else:
            target_embedding = Embedding(embedding(c.tgt_vocab_size))
        target_input = TokenInput(target_embedding, positions(), scale)
        if c.share_embeddings:
            self.target_input = target_input
            if c.positions == "learned":
                self.add_module("target.positions", target_input.positions)
        else:
            self.target_input = self.add_module("target", target_input)

        self.encoder_layers = [
            self.add_module(f"encoder.layers.{i}",
                            EncoderBlock(attention(SelfAttention), norm(), feed_forward(), norm(), c.norm_first))
            for i in range(c.n_encoder_layers)]
        self.decoder_layers = [
            self.add_module(f"decoder.layers.{i}",
                            DecoderBlock(attention(SelfAttention), norm(), attention(CrossAttention), norm(),
                                         feed_forward(), norm(), c.norm_first))
            for i in range(c.n_decoder_layers)]
        # Pre-norm leaves each stack's output un-normalised: a final norm closes it.
        self.encoder_norm = self.add_module("encoder.norm", norm()) if c.norm_first else None
        self.decoder_norm = self.add_module("decoder.norm", norm()) if c.norm_first else None
        if c.tie_embeddings:
            weight = target_embedding.params["weight"]
            self.output = Linear(weight, target_embedding.grads["weight"])
        else:
            self.output = self.add_module("output", Linear(matrix(c.tgt_vocab_size, c.dim)))
        self.loss_fn = CrossEntropyLoss()
        self.used_cache = False

    # --- checking inputs -------------------------------------------------------------
    def check_source(self, source, source_mask):
        source = check_token_ids(source, self.config.src_vocab_size, "source")
        if source.shape[1] > self.config.max_seq_len:
            raise ValueError(f"source of {source.shape[1]} positions is longer than "
                             f"max_seq_len={self.config.max_seq_len}")
        if source_mask is not None:
            source_mask = np.asarray(source_mask)
            if source_mask.dtype != bool:
                raise ValueError(f"source_mask must be booleans (True = real token), got dtype "
                                 f"{source_mask.dtype}")
            if source_mask.shape != source.shape:
                raise ValueError(f"source_mask shape {source_mask.shape} does not match source "
                                 f"shape {source.shape}")
            empty = np.flatnonzero(~source_mask.any(axis=1))
            if empty.size:
                raise ValueError(f"source row {empty[0]} is all padding (source_mask all False)")
        return source, source_mask

    def check_target(self, target, batch, start_pos=0):
        target = check_token_ids(target, self.config.tgt_vocab_size, "target")
        if target.shape[0] != batch:
            raise ValueError(f"source batch size {batch} and target batch size "
                             f"{target.shape[0]} differ")
        if start_pos + target.shape[1] > self.config.max_seq_len:
            raise ValueError(f"target of {start_pos + target.shape[1]} positions is longer "
                             f"than max_seq_len={self.config.max_seq_len}")
        return target

    # --- forward -----------------------------------------------------------------------
    def encode(self, source, source_mask=None):
        """source ids (B, T_source) -> memory (B, T_source, dim)."""
        source, source_mask = self.check_source(source, source_mask)
        allowed = None if source_mask is None else source_mask[:, None, None, :]
        x = self.source_input.forward(source)
        for layer in self.encoder_layers:
            x = layer.forward(x, allowed)
        return x if self.encoder_norm is None else self.encoder_norm.forward(x)

    def decode(self, target_in, memory, source_mask=None, cache=None, memory_kv=None):
        """target ids (B, T) and the memory -> logits (B, T, tgt_vocab_size).

        Generation (no backward) passes a `cache` (positions cache.length.. are decoded) and
        `memory_kv`, the cross-attention keys/values per decoder layer (memory may be None).
        """
        start_pos = 0 if cache is None else cache.length
        batch = (memory if memory_kv is None else memory_kv[0][0]).shape[0]
        target_in = self.check_target(target_in, batch, start_pos)
        seq_len = target_in.shape[1]
        self_allowed = causal_mask(seq_len, start_pos) if seq_len > 1 else None
        cross_allowed = None if source_mask is None else np.asarray(source_mask)[:, None, None, :]
        x = self.target_input.forward(target_in, start_pos)
        for index, layer in enumerate(self.decoder_layers):
            x = layer.forward(x, memory, self_allowed, cross_allowed,
                              None if cache is None else cache.layer(index), start_pos,
                              None if memory_kv is None else memory_kv[index])
        if cache is not None:
            cache.length += seq_len
        self.used_cache = cache is not None or memory_kv is not None
        if self.decoder_norm is not None:
            x = self.decoder_norm.forward(x)
        return self.output.forward(x)

    def cross_keys_values(self, memory):
        """Each decoder layer's cross-attention keys and values of the memory, computed once."""
        return [layer.cross_attention.memory_keys_values(memory) for layer in self.decoder_layers]

    def forward(self, source, target_in, source_mask=None):
        """source (B, T_source), target_in (B, T_target) ids -> logits (B, T_target, tgt_vocab)."""
        source = np.asarray(source)
        target_in = np.asarray(target_in)
        if source.ndim == 2 and target_in.ndim == 2 and source.shape[0] != target_in.shape[0]:
            raise ValueError(f"source batch size {source.shape[0]} and target batch size "
                             f"{target_in.shape[0]} differ")
        memory = self.encode(source, source_mask)
        return self.decode(target_in, memory, source_mask)

    # --- backward ----------------------------------------------------------------------
    def backward(self, d_logits):
        """Adds every parameter's gradient into self.grads; token ids get no gradient."""
        if self.used_cache:
            raise ValueError("backward after a forward with a cache: the cache is for "
                             "generation only; run forward without it to train")
        dx = self.output.backward(d_logits)
        if self.decoder_norm is not None:
            dx = self.decoder_norm.backward(dx)
        # Every decoder layer reads the memory, so its gradient is the sum of theirs.
        d_memory = 0.0
        for layer in reversed(self.decoder_layers):
            dx, d_layer_memory = layer.backward(dx)
            d_memory = d_memory + d_layer_memory
        self.target_input.backward(dx)
        if self.encoder_norm is not None:
            d_memory = self.encoder_norm.backward(d_memory)
        for layer in reversed(self.encoder_layers):
            d_memory = layer.backward(d_memory)
        self.source_input.backward(d_memory)

    def loss_and_grads(self, source, target_in, target_out, source_mask=None):
        """Mean cross-entropy of predicting target_out (-1 = ignore) and the gradients.

        The returned grads dict is the model's own buffer, refilled by every call.
        """
        self.zero_grad()
        logits = self.forward(source, target_in, source_mask)
        loss = self.loss_fn.forward(logits, target_out)
        self.backward(self.loss_fn.backward(1.0))
        return loss, self.grads

    def num_params(self):
        return sum(p.size for p in self.params.values())
