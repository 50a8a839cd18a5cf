"""The gradient checks must be able to fail.

Each case replaces one backward with a plausible mistake (a dropped term, a missing
transpose or scale, an overwrite instead of an add) and checks that gradcheck now reports
a large error for that component. If one of these passes, the checks above are blind.
"""

import numpy as np
import pytest

import tinyllama_np as tl
import tinyllama_np.nn.attention as attention_module
from tinyllama_np.nn import CrossEntropyLoss, causal_mask


def rmsnorm_without_projection_term(self, dy):
    self.grads["weight"] += (dy * self.x_hat).reshape(-1, self.x_hat.shape[-1]).sum(axis=0)
    return dy * self.params["weight"] * self.inv_rms


def layernorm_without_mean_term(self, dy):
    width = self.x_hat.shape[-1]
    self.grads["weight"] += (dy * self.x_hat).reshape(-1, width).sum(axis=0)
    self.grads["bias"] += dy.reshape(-1, width).sum(axis=0)
    g = dy * self.params["weight"]
    return (g - self.x_hat * np.mean(g * self.x_hat, axis=-1, keepdims=True)) * self.inv_std


def linear_with_weight_gradient_from_first_row_only(self, dy):
    self.grads["weight"] += dy[0].T @ self.x[0]
    return dy @ self.params["weight"]


def embedding_that_overwrites_repeated_tokens(self, dy):
    flat = self.tokens.reshape(-1)
    self.grads["weight"][flat] += dy.reshape(-1, dy.shape[-1])  # repeats are lost
    return None


def rope_that_rotates_forward_again(self, dy):
    pairs = np.ascontiguousarray(dy).view(self.rotation.dtype)
    return (pairs * self.rotation).view(dy.dtype)


def sinusoidal_that_adds_the_table_again(self, dy):
    return dy + self.table[:dy.shape[1]]


def softmax_without_subtraction(self, d_probs):
    return d_probs * self.probs


def attention_without_scale_in_backward(self, d_out):
    d_probs = d_out @ self.v.swapaxes(-1, -2)
    dv = self.probs.swapaxes(-1, -2) @ d_out
    d_scores = self.softmax.backward(d_probs)
    return d_scores @ self.k, d_scores.swapaxes(-1, -2) @ self.q_scaled, dv


def causal_attention_that_overwrites_key_gradients(self, d_out):
    # Each block's dk and dv replace the earlier blocks' instead of adding to them.
    dq = np.empty_like(self.q_scaled)
    dk, dv = np.zeros_like(self.k), np.zeros_like(self.v)
    for (start, end, seen), softmax in zip(self.blocks(dq.shape[-2], self.k.shape[-2]), self.softmaxes):
        d_block = d_out[..., start:end, :]
        dv[..., :seen, :] = softmax.probs.swapaxes(-1, -2) @ d_block
        d_scores = softmax.backward(d_block @ self.v[..., :seen, :].swapaxes(-1, -2))
        dq[..., start:end, :] = d_scores @ self.k[..., :seen, :] * self.scale
        dk[..., :seen, :] = d_scores.swapaxes(-1, -2) @ self.q_scaled[..., start:end, :]
    return dq, dk, dv


def repeat_kv_backward_that_keeps_one_copy(dx, n_rep):
    batch, seq_len, n_heads, head_dim = dx.shape
    return dx.reshape(batch, seq_len, n_heads // n_rep, n_rep, head_dim)[:, :, :, 0]


def mask_backward_that_does_nothing(d_scores, allowed):
    return d_scores


def swiglu_with_sigmoid_as_silu_derivative(self, dy):
    d_hidden = self.w2.backward(dy)
    d_gate_in = d_hidden * self.content * self.sig
    return self.w1.backward(d_gate_in) + self.w3.backward(d_hidden * self.gate)


def mlp_with_gelu_derivative_missing_a_term(self, dy):
    d_act = self.w_out.backward(dy)
    return self.w_in.backward(d_act * 0.5 * (1.0 + self.t))


def mlp_with_relu_derivative_of_one(self, dy):
    return self.w_in.backward(self.w_out.backward(dy))


def cross_entropy_dividing_by_all_positions(self, d_loss=1.0):
    d_logits = self.probs
    d_logits[self.rows, self.targets] -= 1.0
    ignored = np.ones(len(d_logits), dtype=bool)
    ignored[self.rows] = False
    d_logits[ignored] = 0.0
    d_logits *= d_loss / len(d_logits)
    return d_logits.reshape(self.shape)


def block_without_residual_gradient(self, d_out):
    d_h = self.ffn_norm.backward(self.feed_forward.backward(d_out))
    return d_h + self.attention_norm.backward(self.attention.backward(d_h))


def normal(rng, *shape):
    return rng.standard_normal(shape)


def swiglu(rng):
    return tl.SwiGLU(normal(rng, 9, 7), normal(rng, 7, 9), normal(rng, 9, 7)), (normal(rng, 2, 3, 7),), {}


def mha(rng):
    module = tl.MultiHeadAttention(normal(rng, 12, 10), normal(rng, 4, 10), normal(rng, 4, 10),
                                   normal(rng, 10, 12), n_heads=3, n_kv_heads=1,
                                   rotations=tl.rope_rotations(4, 16))
    return module, (normal(rng, 2, 5, 10),), {"allowed": causal_mask(5)}


def sdpa_left_padded(rng):
    allowed = causal_mask(4)[None, None] & np.array([[1, 1, 1, 1], [0, 0, 1, 1]], bool)[:, None, None, :]
    return tl.ScaledDotProductAttention(), (normal(rng, 2, 2, 4, 3), normal(rng, 2, 2, 4, 3),
                                            normal(rng, 2, 2, 4, 3)), {"allowed": allowed}


def small_llama(rng, tie_embeddings=False):
    config = tl.LlamaConfig(17, 12, 2, 2, hidden_dim=20, max_seq_len=8, tie_embeddings=tie_embeddings)
    model = tl.Llama(config, dtype=np.float64)
    for param in model.params.values():
        param[...] = 1 + 0.2 * normal(rng, *param.shape) if param.ndim == 1 else normal(rng, *param.shape) / 3
    return model, (rng.integers(0, 17, size=(2, 5)),), {}


CASES = {
    "RMSNorm": (tl.RMSNorm, "backward", rmsnorm_without_projection_term,
                lambda rng: (tl.RMSNorm(normal(rng, 7)), (normal(rng, 3, 7),), {})),
    "LayerNorm": (tl.LayerNorm, "backward", layernorm_without_mean_term,
                  lambda rng: (tl.LayerNorm(normal(rng, 7), normal(rng, 7)), (normal(rng, 3, 7),), {})),
    "Linear": (tl.Linear, "backward", linear_with_weight_gradient_from_first_row_only,
               lambda rng: (tl.Linear(normal(rng, 4, 5)), (normal(rng, 3, 2, 5),), {})),
    "Embedding": (tl.Embedding, "backward", embedding_that_overwrites_repeated_tokens,
                  lambda rng: (tl.Embedding(normal(rng, 6, 4)), (np.array([[1, 1, 2], [3, 1, 2]]),), {})),
    "RoPE": (tl.RoPE, "backward", rope_that_rotates_forward_again,
             lambda rng: (tl.RoPE(tl.rope_rotations(4, 8)), (normal(rng, 2, 5, 3, 4),), {})),
    "SinusoidalPositions": (tl.SinusoidalPositions, "backward", sinusoidal_that_adds_the_table_again,
                            lambda rng: (tl.SinusoidalPositions(tl.sinusoidal_encoding(8, 4)),
                                         (normal(rng, 2, 5, 4),), {})),
    "Softmax": (tl.Softmax, "backward", softmax_without_subtraction,
                lambda rng: (tl.Softmax(), (normal(rng, 3, 6),), {})),
    "ScaledDotProductAttention": (tl.ScaledDotProductAttention, "backward",
                                  attention_without_scale_in_backward, sdpa_left_padded),
    "CausalAttention": (tl.CausalAttention, "backward", causal_attention_that_overwrites_key_gradients,
                        lambda rng: (tl.CausalAttention(block_size=2), (normal(rng, 2, 2, 5, 3),
                                     normal(rng, 2, 2, 5, 3), normal(rng, 2, 2, 5, 3)), {})),
    "repeat_kv (GQA)": (attention_module, "repeat_kv_backward", repeat_kv_backward_that_keeps_one_copy, mha),
    "padding mask": (attention_module, "apply_mask_backward", mask_backward_that_does_nothing,
                     sdpa_left_padded),
    "SwiGLU": (tl.SwiGLU, "backward", swiglu_with_sigmoid_as_silu_derivative, swiglu),
    "MLP gelu": (tl.MLP, "backward", mlp_with_gelu_derivative_missing_a_term,
                 lambda rng: (tl.MLP(normal(rng, 9, 7), normal(rng, 7, 9)), (normal(rng, 2, 7),), {})),
    "MLP relu": (tl.MLP, "backward", mlp_with_relu_derivative_of_one,
                 lambda rng: (tl.MLP(normal(rng, 9, 7), normal(rng, 7, 9), "relu"), (normal(rng, 2, 7),), {})),
    "CrossEntropyLoss": (CrossEntropyLoss, "backward", cross_entropy_dividing_by_all_positions,
                         lambda rng: (CrossEntropyLoss(), (normal(rng, 4, 5), np.array([1, -1, 4, 0])), {})),
    "TransformerBlock residual": (tl.TransformerBlock, "backward", block_without_residual_gradient, small_llama),
}


@pytest.mark.parametrize("case", CASES)
def test_broken_backward_is_caught(case, monkeypatch):
    owner, attribute, broken, make = CASES[case]
    module, inputs, kwargs = make(np.random.default_rng(7))
    assert max(tl.gradcheck(module, *inputs, **kwargs).values()) < 1e-6, "correct version must pass"
    monkeypatch.setattr(owner, attribute, broken)
    report = tl.gradcheck(module, *inputs, **kwargs)
    assert max(report.values()) > 1e-3, f"broken {case} backward went unnoticed: {report}"


def test_untied_gradient_buffer_is_caught():
    # Tied embeddings: if the output projection kept its own gradient buffer, the
    # embedding's gradient would miss the output's contribution.
    rng = np.random.default_rng(7)
    tied, (tokens,), _ = small_llama(rng, tie_embeddings=True)
    assert max(tl.gradcheck(tied, tokens).values()) < 1e-6
    tied.output.grads["weight"] = np.zeros_like(tied.output.grads["weight"])
    assert max(tl.gradcheck(tied, tokens).values()) > 1e-3
