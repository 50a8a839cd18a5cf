"""The same LLaMA written in PyTorch, the way Meta's reference model.py is written.

Used only to compare against: by the tests (numbers) and by the benchmark (speed), and
only when torch is installed. tinyllama_np itself never needs torch.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F


class TorchLlama(torch.nn.Module):
    def __init__(self, config, params, dtype=torch.float32):
        super().__init__()
        self.config = config
        # Row-major copies, as PyTorch lays out its own parameters (torch.tensor would keep
        # the column-by-column strides of our weight matrices).
        self.weights = torch.nn.ParameterDict({
            name.replace(".", "__"): torch.nn.Parameter(
                torch.tensor(np.ascontiguousarray(value), dtype=dtype))
            for name, value in params.items()})
        head_dim = config.dim // config.n_heads
        freqs = 1.0 / (config.rope_theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
        angles = torch.outer(torch.arange(config.max_seq_len, dtype=torch.float64), freqs)
        complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        self.freqs_cis = torch.polar(torch.ones_like(angles), angles).to(complex_dtype)

    def weight(self, name):
        return self.weights[name.replace(".", "__")]

    def rms_norm(self, x, name):
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.config.norm_eps)
        return x * self.weight(name)

    def rope(self, x):
        pairs = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2))
        rotation = self.freqs_cis[: x.shape[1]][None, :, None, :]
        return torch.view_as_real(pairs * rotation).flatten(3)

    def attention(self, x, prefix):
        c = self.config
        batch, seq_len, _ = x.shape
        head_dim = c.dim // c.n_heads
        q = F.linear(x, self.weight(prefix + "wq.weight")).view(batch, seq_len, c.n_heads, head_dim)
        k = F.linear(x, self.weight(prefix + "wk.weight")).view(batch, seq_len, c.n_kv_heads, head_dim)
        v = F.linear(x, self.weight(prefix + "wv.weight")).view(batch, seq_len, c.n_kv_heads, head_dim)
        q, k = self.rope(q), self.rope(k)
        n_rep = c.n_heads // c.n_kv_heads
        k = torch.repeat_interleave(k, n_rep, dim=2)
        v = torch.repeat_interleave(v, n_rep, dim=2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(2, 3) / math.sqrt(head_dim)
        future = torch.triu(torch.ones(seq_len, seq_len, dtype=torch.bool), diagonal=1)
        scores = scores.masked_fill(future, float("-inf"))
        out = F.softmax(scores, dim=-1) @ v
        out = out.transpose(1, 2).reshape(batch, seq_len, -1)
        return F.linear(out, self.weight(prefix + "wo.weight"))

    def feed_forward(self, x, prefix):
        gate = F.silu(F.linear(x, self.weight(prefix + "w1.weight")))
        return F.linear(gate * F.linear(x, self.weight(prefix + "w3.weight")), self.weight(prefix + "w2.weight"))

    def forward(self, tokens):
        x = F.embedding(tokens, self.weight("tok_embeddings.weight"))
        for i in range(self.config.n_layers):
            p = f"layers.{i}."
            x = x + self.attention(self.rms_norm(x, p + "attention_norm.weight"), p + "attention.")
            x = x + self.feed_forward(self.rms_norm(x, p + "ffn_norm.weight"), p + "feed_forward.")
        x = self.rms_norm(x, "norm.weight")
        output = "tok_embeddings.weight" if self.config.tie_embeddings else "output.weight"
        return F.linear(x, self.weight(output))

    def loss(self, tokens, targets):
        logits = self.forward(tokens)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-1)

    def grads(self):
        return {name.replace("__", "."): p.grad.numpy() for name, p in self.weights.items()}
