"""Our EncoderDecoder against torch.nn.Transformer with the same weights, in float64.

torch packs each attention's query, key and value projections into one `in_proj_weight`
(3 * dim, dim); ours are separate wq, wk, wv, so we stack them. torch's projections have
biases and ours do not: they are set to zero. torch.nn.Transformer always puts a final
LayerNorm after each stack; the 2017 post-norm model has none, so it is removed there.
Embeddings, positions and the output projection are not part of torch.nn.Transformer and
are written here with torch operations on the same arrays.
"""

import numpy as np
import pytest

import tinyllama_np as tl
from tinyllama_np.nn import sinusoidal_encoding

torch = pytest.importorskip("torch")
F = torch.nn.functional
pytestmark = [pytest.mark.reference,  # counted in the run's summary (conftest.py)
              pytest.mark.filterwarnings("ignore:enable_nested_tensor")]


def make_model(norm_first, activation, tie, rng):
    config = tl.EncoderDecoderConfig(src_vocab_size=15, tgt_vocab_size=13, dim=12, n_heads=3,
                                     n_encoder_layers=2, n_decoder_layers=2, hidden_dim=20,
                                     max_seq_len=16, norm_first=norm_first, activation=activation,
                                     tie_embeddings=tie)
    model = tl.EncoderDecoder(config, seed=3, dtype=np.float64)
    for name, param in model.params.items():  # norms away from 1 and 0, so they matter
        if param.ndim == 1:
            param[...] = (1.0 if name.endswith("weight") else 0.0) + 0.2 * rng.standard_normal(param.shape)
    return model


def torch_twin(model):
    """torch.nn.Transformer holding our weights, and a map our name -> torch gradient getter."""
    c = model.config
    activation = "relu" if c.activation == "relu" else (lambda x: F.gelu(x, approximate="tanh"))
    torch_model = torch.nn.Transformer(c.dim, c.n_heads, c.n_encoder_layers, c.n_decoder_layers,
                                       c.hidden_dim, dropout=0.0, activation=activation,
                                       batch_first=True, norm_first=c.norm_first,
                                       layer_norm_eps=c.norm_eps, dtype=torch.float64)
    if not c.norm_first:
        torch_model.encoder.norm = None
        torch_model.decoder.norm = None
    params = model.params
    grads = {}

    def put(torch_param, name, rows=None):
        with torch.no_grad():
            target = torch_param if rows is None else torch_param[rows]
            target.copy_(torch.from_numpy(params[name]))
        grads[name] = (lambda: torch_param.grad) if rows is None else (lambda: torch_param.grad[rows])

    def put_attention(torch_attention, prefix):
        dim = c.dim
        for index, projection in enumerate(("wq", "wk", "wv")):
            put(torch_attention.in_proj_weight, f"{prefix}.{projection}.weight",
                slice(index * dim, (index + 1) * dim))
        put(torch_attention.out_proj.weight, f"{prefix}.wo.weight")
        with torch.no_grad():
            torch_attention.in_proj_bias.zero_()
            torch_attention.out_proj.bias.zero_()

    def put_norm(torch_norm, prefix):
        put(torch_norm.weight, f"{prefix}.weight")
        put(torch_norm.bias, f"{prefix}.bias")

    def put_feed_forward(layer, prefix):
        put(layer.linear1.weight, f"{prefix}.w_in.weight")
        put(layer.linear2.weight, f"{prefix}.w_out.weight")
        with torch.no_grad():
            layer.linear1.bias.zero_()
            layer.linear2.bias.zero_()

    for i, layer in enumerate(torch_model.encoder.layers):
        prefix = f"encoder.layers.{i}"
        put_attention(layer.self_attn, f"{prefix}.self_attention")
        put_norm(layer.norm1, f"{prefix}.attention_norm")
        put_norm(layer.norm2, f"{prefix}.ffn_norm")
        put_feed_forward(layer, f"{prefix}.feed_forward")
    for i, layer in enumerate(torch_model.decoder.layers):
        prefix = f"decoder.layers.{i}"
        put_attention(layer.self_attn, f"{prefix}.self_attention")
        put_attention(layer.multihead_attn, f"{prefix}.cross_attention")
        put_norm(layer.norm1, f"{prefix}.self_attention_norm")
        put_norm(layer.norm2, f"{prefix}.cross_attention_norm")
        put_norm(layer.norm3, f"{prefix}.ffn_norm")
        put_feed_forward(layer, f"{prefix}.feed_forward")
    if c.norm_first:
        put_norm(torch_model.encoder.norm, "encoder.norm")
        put_norm(torch_model.decoder.norm, "decoder.norm")

    # The parts outside torch.nn.Transformer, as leaf tensors.
    leaves = {name: torch.tensor(params[name], requires_grad=True) for name in params
              if name not in grads}
    for name, leaf in leaves.items():
        grads[name] = lambda leaf=leaf: leaf.grad
    return torch_model, leaves, grads


def torch_logits(model, torch_model, leaves, source, target_in, source_mask):
    c = model.config
    table = torch.from_numpy(sinusoidal_encoding(c.max_seq_len, c.dim))
    scale = c.dim ** 0.5
    source_embedding = leaves["source.embedding.weight"]
    target_embedding = leaves["target.embedding.weight"]
    src = source_embedding[torch.from_numpy(source)] * scale + table[:source.shape[1]]
    tgt = target_embedding[torch.from_numpy(target_in)] * scale + table[:target_in.shape[1]]
    padding = torch.from_numpy(~source_mask)  # torch: True = padding
    causal = torch.triu(torch.ones(target_in.shape[1], target_in.shape[1], dtype=torch.bool), 1)
    out = torch_model(src, tgt, tgt_mask=causal, src_key_padding_mask=padding,
                      memory_key_padding_mask=padding)
    output = target_embedding if c.tie_embeddings else leaves["output.weight"]
    return out @ output.T


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-norm", "pre-norm"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_same_logits_and_gradients_as_torch(norm_first, activation, tie):
    rng = np.random.default_rng(11)
    model = make_model(norm_first, activation, tie, rng)
    source = rng.integers(0, 15, size=(3, 7))
    source_mask = np.array([[1] * 7, [1] * 4 + [0] * 3, [1] * 6 + [0]], dtype=bool)
    target_in = rng.integers(0, 13, size=(3, 5))
    target_out = rng.integers(0, 13, size=(3, 5))
    target_out[1, 3:] = -1

    logits = model.forward(source, target_in, source_mask)
    loss, grads = model.loss_and_grads(source, target_in, target_out, source_mask)

    torch_model, leaves, torch_grads = torch_twin(model)
    reference = torch_logits(model, torch_model, leaves, source, target_in, source_mask)
    torch_loss = F.cross_entropy(reference.reshape(-1, 13), torch.from_numpy(target_out).reshape(-1),
                                 ignore_index=-1)
    torch_loss.backward()

    np.testing.assert_allclose(logits, reference.detach().numpy(), rtol=0, atol=1e-10)
    assert abs(loss - torch_loss.item()) < 1e-12
    assert set(torch_grads) == set(grads)
    for name, grad in grads.items():
        expected = torch_grads[name]().numpy()
        assert np.max(np.abs(grad - expected)) < 1e-10 * max(1.0, np.max(np.abs(expected))), name
