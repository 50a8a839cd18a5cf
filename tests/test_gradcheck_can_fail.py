"""The gradient checks must be able to fail.

Each case replaces one backward with a plausible mistake (a dropped term, a missing
transpose or scale, an overwrite instead of an add) and checks that gradcheck now reports
a large error for that component. If one of these passes, the checks above are blind.
"""

import numpy as np
import pytest

import tinyllama_np as tl
import tinyllama_np.nn.attention as attention_module
from tinyllama_np.models.bert import Bert, MLMHead, NSPHead
from tinyllama_np.models.encoder_decoder import DecoderBlock, EncoderBlock, TokenInput
from tinyllama_np.nn import CrossEntropyLoss, causal_mask

import test_bert  # tests/test_bert.py: its small BERT and loss wrapper


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


def cross_attention_without_value_path_to_memory(self, dy):
    d_out = self.split_heads(self.wo.backward(dy))
    d_queries, d_keys, _ = self.attention.backward(d_out)
    return self.wq.backward(self.merge_heads(d_queries)), self.wk.backward(self.merge_heads(d_keys))


def self_attention_through_queries_only(self, dy):
    dx, _ = tl.CrossAttention.backward(self, dy)
    return dx


def learned_positions_from_first_row_only(self, dy):
    self.grads["weight"][self.start_pos:self.start_pos + dy.shape[1]] += dy[0]
    return dy


def post_norm_encoder_block_without_residual_gradient(self, d_out):
    d_sum = self.ffn_norm.backward(d_out)
    d_h = self.feed_forward.backward(d_sum)
    d_sum = self.attention_norm.backward(d_h)
    return d_sum + self.self_attention.backward(d_sum)


def pre_norm_decoder_block_without_cross_residual(self, d_out):
    d_h2 = d_out + self.ffn_norm.backward(self.feed_forward.backward(d_out))
    d_cross, d_memory = self.cross_attention.backward(d_h2)
    d_h1 = self.cross_attention_norm.backward(d_cross)  # the residual's d_h2 is missing
    return d_h1 + self.self_attention_norm.backward(self.self_attention.backward(d_h1)), d_memory


def token_input_without_embedding_scale(self, dy):
    self.embedding.backward(self.positions.backward(dy))


def encoder_decoder_memory_gradient_from_last_layer_only(self, d_logits):
    dx = self.output.backward(d_logits)
    for layer in reversed(self.decoder_layers):
        dx, d_memory = layer.backward(dx)  # overwritten: only the first decoder layer's survives
    self.target_input.backward(dx)
    for layer in reversed(self.encoder_layers):
        d_memory = layer.backward(d_memory)
    self.source_input.backward(d_memory)


def mlm_head_with_gelu_derivative_missing_a_term(self, d_logits):
    d_act = self.norm.backward(self.output.backward(d_logits))
    return self.dense.backward(d_act * 0.5 * (1.0 + self.t))


def nsp_head_without_tanh_derivative(self, d_logits):
    return self.pooler.backward(self.classifier.backward(d_logits))


def bert_encoder_backward_forgetting_segments(self, d_hidden):
    dx = d_hidden
    for layer in reversed(self.layers):
        dx = layer.backward(dx)
    self.token_embedding.backward(self.positions.backward(self.embedding_norm.backward(dx)))


def lora_without_scale_on_the_a_path(self, dy):
    dy2d = dy.reshape(-1, dy.shape[-1])
    self.grads["lora_B"] += self.scale * (dy2d.T @ self.u)
    du = dy2d @ self.params["lora_B"]  # the alpha / r scale is forgotten here
    self.grads["lora_A"] += du.T @ self.x_low
    return (dy2d @ self.params["weight"] + du @ self.params["lora_A"]).reshape(self.x_shape)


def lora_dropout_without_mask_in_backward(self, dy):
    dy2d = dy.reshape(-1, dy.shape[-1])
    self.grads["lora_B"] += self.scale * (dy2d.T @ self.u)
    du = self.scale * (dy2d @ self.params["lora_B"])
    self.grads["lora_A"] += du.T @ self.x2d  # the input before dropout
    return (dy2d @ self.params["weight"] + du @ self.params["lora_A"]).reshape(self.x_shape)


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


def cross_attention(rng):
    module = tl.CrossAttention(normal(rng, 6, 10), normal(rng, 6, 8), normal(rng, 6, 8), normal(rng, 10, 6), 2)
    return module, (normal(rng, 2, 3, 10), normal(rng, 2, 5, 8)), {
        "allowed": tl.padding_mask([5, 3], 5)[:, None, None, :]}


def self_attention(rng):
    module = tl.SelfAttention(normal(rng, 6, 10), normal(rng, 6, 10), normal(rng, 6, 10), normal(rng, 10, 6), 2)
    return module, (normal(rng, 2, 4, 10),), {"allowed": causal_mask(4)}


def small_encoder_decoder(rng, norm_first=False):
    config = tl.EncoderDecoderConfig(7, 6, 4, 2, 1, 2, 6, max_seq_len=8, activation="gelu",
                                     norm_first=norm_first)
    model = tl.EncoderDecoder(config, dtype=np.float64)
    return model, (rng.integers(0, 7, size=(2, 5)), rng.integers(0, 6, size=(2, 3))), {
        "source_mask": tl.padding_mask([5, 3], 5)}


def bert_loss(rng):
    bert, inputs = test_bert.small_bert(rng)
    return test_bert.PretrainingLoss(bert), inputs, {}


def lora(rng, dropout=0.0):
    layer = tl.LoRALinear(normal(rng, 6, 7), 3, alpha=6.0, dropout=dropout)
    layer.params["lora_B"][...] = normal(rng, 6, 3)  # not the zeros it starts at
    x = normal(rng, 2, 4, 7)
    return layer, (x,), {"keep_mask": rng.random(x.shape) >= dropout}


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
    "LoRALinear scale": (tl.LoRALinear, "backward", lora_without_scale_on_the_a_path, lora),
    "LoRALinear dropout": (tl.LoRALinear, "backward", lora_dropout_without_mask_in_backward,
                           lambda rng: lora(rng, dropout=0.4)),
    "TransformerBlock residual": (tl.TransformerBlock, "backward", block_without_residual_gradient, small_llama),
    "CrossAttention value path": (tl.CrossAttention, "backward",
                                  cross_attention_without_value_path_to_memory, cross_attention),
    "SelfAttention key/value path": (tl.SelfAttention, "backward", self_attention_through_queries_only,
                                     self_attention),
    "LearnedPositions": (tl.LearnedPositions, "backward", learned_positions_from_first_row_only,
                         lambda rng: (tl.LearnedPositions(normal(rng, 8, 4)), (normal(rng, 3, 5, 4),), {})),
    "EncoderBlock post-norm residual": (EncoderBlock, "backward",
                                        post_norm_encoder_block_without_residual_gradient,
                                        small_encoder_decoder),
    "MLMHead gelu": (MLMHead, "backward", mlm_head_with_gelu_derivative_missing_a_term,
                     lambda rng: (test_bert.mlm_head(rng), (normal(rng, 5, 6),), {})),
    "NSPHead tanh": (NSPHead, "backward", nsp_head_without_tanh_derivative,
                     lambda rng: (NSPHead(tl.Linear(normal(rng, 6, 6)), tl.Linear(normal(rng, 2, 6))),
                                  (normal(rng, 4, 6),), {})),
    "Bert segment embedding": (Bert, "encode_backward", bert_encoder_backward_forgetting_segments, bert_loss),
    "DecoderBlock pre-norm residual": (DecoderBlock, "backward", pre_norm_decoder_block_without_cross_residual,
                                       lambda rng: small_encoder_decoder(rng, norm_first=True)),
    "embedding scale": (TokenInput, "backward", token_input_without_embedding_scale, small_encoder_decoder),
    "EncoderDecoder memory gradient": (tl.EncoderDecoder, "backward",
                                       encoder_decoder_memory_gradient_from_last_layer_only,
                                       small_encoder_decoder),
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
