"""BERT (seed 3.2.1): an encoder alone, pre-trained by MLM and NSP.

    [CLS] sentence A [SEP] sentence B [SEP]
      -> token + segment (A = 0, B = 1) + learned position embeddings -> LayerNorm
      -> n_layers x EncoderBlock (self-attention over EVERY position: no causal mask)
      -> hidden (B, T, dim)
           MLM head at the chosen positions:  output(LayerNorm(gelu(dense h)))   -> vocabulary
           NSP head at [CLS] (position 0):    classifier(tanh(pooler h[:, 0])) -> {is next, random}

* MLM (masked language model, 掩码语言模型): 15% of the positions are chosen; the model must
  recover their tokens, seeing both sides of each. The loss counts the chosen positions only.
* NSP (next sentence prediction, 下一句预测): is B the sentence that followed A, or one drawn
  at random?

Because every position sees every other, BERT is a good reader (fill in a blank, classify
a sentence) but cannot write left to right: that needs the causal mask of a decoder such as
LLaMA, trained by CLM (causal language modelling, predicting each next token).
The encoder blocks are the encoder-decoder's (post-norm, as in BERT).
"""

from dataclasses import asdict, dataclass

import numpy as np

from ..nn import (MLP, CrossEntropyLoss, Embedding, LayerNorm, LearnedPositions, Linear, Module,
                 SelfAttention)
from ..nn.feedforward import GELU_C
from .encoder_decoder import EncoderBlock, check_token_ids

IS_NEXT, NOT_NEXT = 0, 1  # NSP labels


@dataclass
class BertConfig:
    vocab_size: int
    dim: int
    n_heads: int
    n_layers: int
    hidden_dim: int
    max_seq_len: int = 128
    n_segments: int = 2
    norm_first: bool = False
    activation: str = "gelu"
    norm_eps: float = 1e-5

    def __post_init__(self):
        for name in ("vocab_size", "dim", "n_heads", "n_layers", "hidden_dim", "max_seq_len",
                     "n_segments"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.dim % self.n_heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by n_heads ({self.n_heads})")
        if self.activation not in ("relu", "gelu"):
            raise ValueError(f"activation must be 'relu' or 'gelu', got {self.activation!r}")

    def to_dict(self):
        return asdict(self)


class MLMHead(Module):
    """h (N, dim) -> logits (N, vocab): output(norm(gelu(dense h))), output tied to the token embedding."""

    def __init__(self, dense, norm, output):
        super().__init__()
        self.dense = self.add_module("dense", dense)
        self.norm = self.add_module("norm", norm)
        self.output = output  # registered by the model (it shares the embedding's arrays)

    def forward(self, h):
        a = self.dense.forward(h)
        self.a = a
        self.t = np.tanh(GELU_C * (a + 0.044715 * a ** 3))
        return self.output.forward(self.norm.forward(0.5 * a * (1.0 + self.t)))

    def backward(self, d_logits):
        d_act = self.norm.backward(self.output.backward(d_logits))
        # gelu'(a) = 0.5 (1 + t) + 0.5 a (1 - t^2) c (1 + 3 * 0.044715 a^2)
        a, t = self.a, self.t
        slope = 0.5 * (1.0 + t) + 0.5 * a * (1.0 - t * t) * GELU_C * (1.0 + 3 * 0.044715 * a * a)
        return self.dense.backward(d_act * slope)


class NSPHead(Module):
    """h_cls (B, dim) -> logits (B, 2): classifier(tanh(pooler h_cls))."""

    def __init__(self, pooler, classifier):
        super().__init__()
        self.pooler = self.add_module("pooler", pooler)
        self.classifier = self.add_module("classifier", classifier)

    def forward(self, h_cls):
        self.pooled = np.tanh(self.pooler.forward(h_cls))
        return self.classifier.forward(self.pooled)

    def backward(self, d_logits):
        # tanh'(a) = 1 - tanh(a)^2
        d_pooled = self.classifier.backward(d_logits)
        return self.pooler.backward(d_pooled * (1.0 - self.pooled * self.pooled))


class Bert(Module):
    def __init__(self, config, seed=0, dtype=np.float32):
        super().__init__()
        self.config = c = config
        self.dtype = np.dtype(dtype)
        if not np.issubdtype(self.dtype, np.floating):
            raise ValueError(f"dtype must be a floating-point type, got {self.dtype}")
        rng = np.random.default_rng(seed)

        def normal(*shape, std=0.02):  # BERT's initialisation
            return (rng.standard_normal(shape) * std).astype(self.dtype)

        def norm():
            return LayerNorm(np.ones(c.dim, self.dtype), np.zeros(c.dim, self.dtype), c.norm_eps)

        self.token_embedding = self.add_module("token_embedding", Embedding(normal(c.vocab_size, c.dim)))
        self.segment_embedding = self.add_module("segment_embedding", Embedding(normal(c.n_segments, c.dim)))
        self.positions = self.add_module("positions", LearnedPositions(normal(c.max_seq_len, c.dim)))
        self.embedding_norm = self.add_module("embedding_norm", norm())
        self.layers = []
        for i in range(c.n_layers):
            attention = SelfAttention(normal(c.dim, c.dim), normal(c.dim, c.dim), normal(c.dim, c.dim),
                                      normal(c.dim, c.dim), c.n_heads)
            feed_forward = MLP(normal(c.hidden_dim, c.dim), normal(c.dim, c.hidden_dim), c.activation)
            block = EncoderBlock(attention, norm(), feed_forward, norm(), c.norm_first)
            self.layers.append(self.add_module(f"layers.{i}", block))
        self.final_norm = self.add_module("final_norm", norm()) if c.norm_first else None
        embedding = self.token_embedding
        self.mlm_head = self.add_module("mlm_head", MLMHead(
            Linear(normal(c.dim, c.dim)), norm(), Linear(embedding.params["weight"], embedding.grads["weight"])))
        self.nsp_head = self.add_module("nsp_head", NSPHead(Linear(normal(c.dim, c.dim)), Linear(normal(2, c.dim))))
        self.mlm_loss = CrossEntropyLoss()
        self.nsp_loss = CrossEntropyLoss()

    def check_inputs(self, tokens, segments, attention_mask):
        tokens = check_token_ids(tokens, self.config.vocab_size, "tokens")
        segments = check_token_ids(segments, self.config.n_segments, "segments")
        if segments.shape != tokens.shape:
            raise ValueError(f"segments shape {segments.shape} does not match tokens shape {tokens.shape}")
        if tokens.shape[1] > self.config.max_seq_len:
            raise ValueError(f"sequence of {tokens.shape[1]} positions is longer than "
                             f"max_seq_len={self.config.max_seq_len}")
        if attention_mask is not None:
            attention_mask = np.asarray(attention_mask)
            if attention_mask.dtype != bool or attention_mask.shape != tokens.shape:
                raise ValueError(f"attention_mask must be booleans of shape {tokens.shape}, got "
                                 f"{attention_mask.dtype} of shape {attention_mask.shape}")
        return tokens, segments, attention_mask

    def encode(self, tokens, segments, attention_mask=None):
        """-> hidden states (B, T, dim). attention_mask (B, T): False at padding."""
        tokens, segments, attention_mask = self.check_inputs(tokens, segments, attention_mask)
        allowed = None if attention_mask is None else attention_mask[:, None, None, :]
        x = self.token_embedding.forward(tokens) + self.segment_embedding.forward(segments)
        x = self.embedding_norm.forward(self.positions.forward(x))
        for layer in self.layers:
            x = layer.forward(x, allowed)
        return x if self.final_norm is None else self.final_norm.forward(x)

    def forward(self, tokens, segments, attention_mask=None):
        """-> (MLM logits at every position (B, T, vocab), NSP logits (B, 2))."""
        hidden = self.encode(tokens, segments, attention_mask)
        return self.mlm_head.forward(hidden), self.nsp_head.forward(hidden[:, 0])

    def loss(self, tokens, segments, mlm_targets, nsp_labels, attention_mask=None):
        """MLM loss (mean over the chosen positions, mlm_targets >= 0; -1 elsewhere) + NSP loss.

        Returns (total, mlm, nsp) as floats; backward_loss() then fills the gradients.
        """
        hidden = self.encode(tokens, segments, attention_mask)
        mlm_targets, nsp_labels = np.asarray(mlm_targets), np.asarray(nsp_labels)
        if mlm_targets.shape != hidden.shape[:2]:
            raise ValueError(f"mlm_targets shape {mlm_targets.shape} does not match tokens shape "
                             f"{hidden.shape[:2]}")
        if nsp_labels.shape != (hidden.shape[0],):
            raise ValueError(f"nsp_labels must hold one label per row, shape ({hidden.shape[0]},), "
                             f"got {nsp_labels.shape}")
        # The MLM head runs only where there is something to predict.
        self.chosen = np.nonzero(mlm_targets >= 0)
        self.hidden_shape = hidden.shape
        mlm = self.mlm_loss.forward(self.mlm_head.forward(hidden[self.chosen]), mlm_targets[self.chosen])
        nsp = self.nsp_loss.forward(self.nsp_head.forward(hidden[:, 0]), nsp_labels)
        return mlm + nsp, mlm, nsp

    def backward_loss(self, d_loss=1.0):
        d_hidden = np.zeros(self.hidden_shape, self.dtype)
        d_hidden[self.chosen] = self.mlm_head.backward(self.mlm_loss.backward(d_loss))
        d_hidden[:, 0] += self.nsp_head.backward(self.nsp_loss.backward(d_loss))
        self.encode_backward(d_hidden)

    def encode_backward(self, d_hidden):
        """From dL/d(hidden states) back to every parameter of the encoder and embeddings."""
        dx = d_hidden if self.final_norm is None else self.final_norm.backward(d_hidden)
        for layer in reversed(self.layers):
            dx = layer.backward(dx)
        dx = self.positions.backward(self.embedding_norm.backward(dx))
        self.token_embedding.backward(dx)
        self.segment_embedding.backward(dx)

    def loss_and_grads(self, tokens, segments, mlm_targets, nsp_labels, attention_mask=None):
        """-> ((total, mlm, nsp), grads); grads is the model's own buffer, refilled every call."""
        self.zero_grad()
        losses = self.loss(tokens, segments, mlm_targets, nsp_labels, attention_mask)
        self.backward_loss()
        return losses, self.grads

    def num_params(self):
        return sum(p.size for p in self.params.values())
