"""The encoder-decoder (2017 Transformer): gradient checks in float64, and bad input."""

import numpy as np
import pytest

import tinyllama_np as tl
from tinyllama_np.nn import causal_mask

TOLERANCE = 1e-6


def assert_gradients_match(report):
    assert report, "gradcheck checked nothing"
    worst = max(report, key=report.get)
    assert report[worst] < TOLERANCE, f"{worst}: relative error {report[worst]:.2e}\n{report}"


def normal(rng, *shape):
    return rng.standard_normal(shape)


def cross_attention(rng, dim=10, memory_dim=10, n_heads=2, head_dim=3):
    return tl.CrossAttention(normal(rng, n_heads * head_dim, dim), normal(rng, n_heads * head_dim, memory_dim),
                             normal(rng, n_heads * head_dim, memory_dim), normal(rng, dim, n_heads * head_dim),
                             n_heads)


def test_cross_attention_different_lengths_padded_source(rng):
    # Target of 4 positions reads a source of 7; row 1's source has 4 real tokens, row 2's 6.
    attention = cross_attention(rng, memory_dim=8)
    source_mask = tl.padding_mask([7, 4, 6], 7)
    x, memory = normal(rng, 3, 4, 10), normal(rng, 3, 7, 8)
    report = tl.gradcheck(attention, x, memory, allowed=source_mask[:, None, None, :])
    assert {"input 0", "input 1", "param wq.weight", "param wo.weight"} <= set(report)
    assert_gradients_match(report)
    # Padded source positions get no gradient and no attention.
    attention.zero_grad()
    attention.forward(x, memory, source_mask[:, None, None, :])
    _, d_memory = attention.backward(normal(rng, 3, 4, 10))
    assert np.all(d_memory[1, 4:] == 0) and np.all(d_memory[2, 6:] == 0)
    assert np.all(attention.weights[1, :, :, 4:] == 0)
    np.testing.assert_allclose(attention.weights.sum(axis=-1), 1.0)


def test_cross_attention_longer_target_than_source(rng):
    attention = cross_attention(rng, n_heads=3, head_dim=2)
    assert_gradients_match(tl.gradcheck(attention, normal(rng, 2, 6, 10), normal(rng, 2, 3, 10)))


def test_self_attention_is_cross_attention_with_itself(rng):
    weights = [normal(rng, 6, 10), normal(rng, 6, 10), normal(rng, 6, 10), normal(rng, 10, 6)]
    x = normal(rng, 2, 5, 10)
    self_attention = tl.SelfAttention(*weights, n_heads=2)
    same = tl.CrossAttention(*weights, n_heads=2).forward(x, x, causal_mask(5))
    np.testing.assert_allclose(self_attention.forward(x, causal_mask(5)), same)
    assert_gradients_match(tl.gradcheck(self_attention, x, allowed=causal_mask(5)))


def test_learned_positions(rng):
    positions = tl.LearnedPositions(normal(rng, 9, 4))
    assert_gradients_match(tl.gradcheck(positions, normal(rng, 3, 5, 4), start_pos=2))


def small_model(rng, **options):
    settings = dict(src_vocab_size=13, tgt_vocab_size=11, dim=8, n_heads=2, n_encoder_layers=2,
                    n_decoder_layers=2, hidden_dim=12, max_seq_len=10)
    settings.update(options)
    model = tl.EncoderDecoder(tl.EncoderDecoderConfig(**settings), seed=1, dtype=np.float64)
    for name, param in model.params.items():  # norms away from 1 and 0, so they matter
        if param.ndim == 1:
            param[...] = (1.0 if name.endswith("weight") else 0.0) + 0.2 * normal(rng, *param.shape)
    return model


def model_inputs(rng, model):
    c = model.config
    source = rng.integers(0, c.src_vocab_size, size=(2, 6))
    target_in = rng.integers(0, c.tgt_vocab_size, size=(2, 4))
    return source, target_in, tl.padding_mask([6, 3], 6)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-norm", "pre-norm"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_whole_model(rng, norm_first, activation, tie):
    model = small_model(rng, norm_first=norm_first, activation=activation, tie_embeddings=tie)
    source, target_in, source_mask = model_inputs(rng, model)
    report = tl.gradcheck(model, source, target_in, source_mask=source_mask, max_entries=12)
    assert ("param output.weight" in report) != tie
    assert_gradients_match(report)


def test_whole_model_shared_embeddings_learned_positions(rng):
    model = small_model(rng, tgt_vocab_size=13, share_embeddings=True, tie_embeddings=True,
                        positions="learned", n_encoder_layers=1, n_decoder_layers=1,
                        activation="gelu")
    assert "target.embedding.weight" not in model.params and "target.positions.weight" in model.params
    source, target_in, source_mask = model_inputs(rng, model)
    assert_gradients_match(tl.gradcheck(model, source, target_in, source_mask=source_mask,
                                        max_entries=30))


def test_padding_changes_nothing_for_the_real_tokens(rng):
    model = small_model(rng)
    source, target_in, _ = model_inputs(rng, model)
    short = model.forward(source[:1, :3], target_in[:1])
    padded_source = source[:1].copy()
    padded_source[0, 3:] = 5  # whatever the padding holds
    padded = model.forward(padded_source, target_in[:1], tl.padding_mask([3], 6))
    np.testing.assert_allclose(padded, short, atol=1e-12)


def test_loss_ignores_minus_one(rng):
    model = small_model(rng)
    source, target_in, mask = model_inputs(rng, model)
    target_out = rng.integers(0, 11, size=target_in.shape)
    ignored = target_out.copy()
    ignored[1, 2:] = -1
    loss_all, _ = model.loss_and_grads(source, target_in, target_out, mask)
    loss_part, _ = model.loss_and_grads(source, target_in, ignored, mask)
    assert loss_all != loss_part


@pytest.mark.parametrize("call, message", [
    (lambda m: m.forward(np.zeros((2, 3), int), np.zeros((3, 2), int)), "batch size"),
    (lambda m: m.forward(np.zeros((1, 11), int), np.zeros((1, 2), int)), "longer than max_seq_len"),
    (lambda m: m.forward(np.zeros((1, 3), int), np.zeros((1, 11), int)), "longer than max_seq_len"),
    (lambda m: m.forward(np.array([[1, 13]]), np.zeros((1, 2), int)), "source token id 13"),
    (lambda m: m.forward(np.array([[1, 2]]), np.array([[-1, 0]])), "target token id -1"),
    (lambda m: m.forward(np.zeros((2, 3), int), np.zeros((2, 2), int), np.ones((2, 4), bool)),
     "source_mask shape"),
    (lambda m: m.forward(np.zeros((2, 3), int), np.zeros((2, 2), int), np.ones((2, 3))), "booleans"),
    (lambda m: m.forward(np.zeros((2, 3), int), np.zeros((2, 2), int),
                         np.array([[1, 1, 0], [0, 0, 0]], bool)), "row 1 is all padding"),
    (lambda m: m.forward(np.zeros((2, 3)), np.zeros((2, 2), int)), "integers"),
    (lambda m: m.forward(np.zeros(3, int), np.zeros((1, 2), int)), "source must have shape"),
])
def test_bad_input(rng, call, message):
    with pytest.raises(ValueError, match=message):
        call(small_model(rng))


@pytest.mark.parametrize("options, message", [
    (dict(dim=9), "divisible by n_heads"),
    (dict(activation="swish"), "activation"),
    (dict(positions="rope"), "positions"),
    (dict(share_embeddings=True), "one vocabulary"),
    (dict(n_encoder_layers=0), "n_encoder_layers"),
])
def test_bad_config(options, message):
    settings = dict(src_vocab_size=13, tgt_vocab_size=11, dim=8, n_heads=2, n_encoder_layers=1,
                    n_decoder_layers=1, hidden_dim=12)
    settings.update(options)
    with pytest.raises(ValueError, match=message):
        tl.EncoderDecoderConfig(**settings)
