"""The whole LLaMA: gradients, the properties that catch a wrong forward, the API contract."""

import numpy as np
import pytest

import tinyllama_np as tl

TOLERANCE = 1e-6


def make_model(rng, dtype=np.float64, **overrides):
    """A small float64 LLaMA with weights large enough that every layer is non-linear
    (at the default 0.02 init the network is nearly linear and a gradient check is weak)."""
    settings = dict(vocab_size=23, dim=24, n_layers=2, n_heads=4, n_kv_heads=2,
                    hidden_dim=40, max_seq_len=16)
    settings.update(overrides)
    model = tl.Llama(tl.LlamaConfig(**settings), seed=3, dtype=dtype)
    for name, param in model.params.items():
        if param.ndim == 1:  # norm scales
            param[...] = 1 + 0.2 * rng.standard_normal(param.shape)
        else:
            param[...] = rng.standard_normal(param.shape) / np.sqrt(param.shape[1])
    return model


CONFIGS = {
    "mha": dict(n_heads=4, n_kv_heads=4),
    "gqa": dict(n_heads=6, n_kv_heads=2, dim=36),
    "tied": dict(tie_embeddings=True, n_kv_heads=1),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_model_gradients_every_parameter(rng, name):
    model = make_model(rng, **CONFIGS[name])
    tokens = rng.integers(0, model.config.vocab_size, size=(2, 7))
    report = tl.gradcheck(model, tokens, max_entries=12)
    assert set(report) == {f"param {key}" for key in model.params}
    assert ("param output.weight" in report) == (not model.config.tie_embeddings)
    worst = max(report, key=report.get)
    assert report[worst] < TOLERANCE, f"{worst}: {report[worst]:.2e}"


def test_model_gradients_with_padding(rng):
    model = make_model(rng)
    tokens = rng.integers(0, 23, size=(3, 6))
    mask = tl.padding_mask([6, 4, 2], 6)
    report = tl.gradcheck(model, tokens, max_entries=8, attention_mask=mask)
    assert max(report.values()) < TOLERANCE


def test_loss_and_grads_matches_finite_differences(rng):
    model = make_model(rng, tie_embeddings=True)
    tokens = rng.integers(0, 23, size=(2, 5))
    targets = rng.integers(0, 23, size=(2, 5))
    targets[0, 1] = targets[1, 4] = -1
    loss, grads = model.loss_and_grads(tokens, targets)
    assert set(grads) == set(model.params)
    for name in ["tok_embeddings.weight", "layers.1.attention.wk.weight", "norm.weight"]:
        param = model.params[name]
        # Reached by index, not through param.reshape(-1): weight matrices are stored column
        # by column, and reshaping one flat gives a copy, which perturbing would not reach.
        for flat_index in rng.choice(param.size, 5, replace=False):
            index = np.unravel_index(flat_index, param.shape)
            original = param[index]
            param[index] = original + 1e-5
            plus = model.loss_fn.forward(model.forward(tokens), targets)
            param[index] = original - 1e-5
            minus = model.loss_fn.forward(model.forward(tokens), targets)
            param[index] = original
            numerical = (plus - minus) / 2e-5
            analytic = grads[name][index]
            assert analytic == pytest.approx(numerical, rel=1e-6, abs=1e-9), name


# --- Properties that a wrong forward breaks ---------------------------------------------

def test_changing_a_future_token_never_changes_earlier_logits(rng):
    model = make_model(rng)
    tokens = rng.integers(0, 23, size=(2, 9))
    before = model.forward(tokens)
    for position in range(9):
        changed = tokens.copy()
        changed[:, position] = (changed[:, position] + 1) % 23
        after = model.forward(changed)
        np.testing.assert_array_equal(after[:, :position], before[:, :position])
        assert not np.allclose(after[:, position], before[:, position])


def test_rope_dot_product_depends_only_on_offset(rng):
    rope = tl.RoPE(tl.rope_rotations(head_dim=8, max_seq_len=64, theta=10000.0))
    q = rng.standard_normal(8)
    k = rng.standard_normal(8)

    def rotated(vector, position):
        return rope.forward(vector.reshape(1, 1, 1, 8), start_pos=position).reshape(8)

    for offset in [0, 1, 5, 17]:
        dots = [rotated(q, m + offset) @ rotated(k, m) for m in [0, 3, 20, 40]]
        np.testing.assert_allclose(dots, dots[0], rtol=1e-10)
    # ...and it really depends on the offset.
    assert not np.isclose(rotated(q, 1) @ rotated(k, 0), rotated(q, 2) @ rotated(k, 0))


def test_rope_matches_explicit_pair_rotation(rng):
    # Meta's convention: pair (x[2i], x[2i+1]) turned by angle pos * theta^(-2i/d).
    head_dim, theta, position = 6, 500.0, 11
    x = rng.standard_normal(head_dim)
    rope = tl.RoPE(tl.rope_rotations(head_dim, 32, theta))
    y = rope.forward(x.reshape(1, 1, 1, -1), start_pos=position).reshape(-1)
    for i in range(head_dim // 2):
        angle = position * theta ** (-2 * i / head_dim)
        c, s = np.cos(angle), np.sin(angle)
        np.testing.assert_allclose(y[2 * i], c * x[2 * i] - s * x[2 * i + 1], rtol=1e-12)
        np.testing.assert_allclose(y[2 * i + 1], s * x[2 * i] + c * x[2 * i + 1], rtol=1e-12)


def test_rmsnorm_is_invariant_to_scaling_its_input(rng):
    norm = tl.RMSNorm(rng.standard_normal(10), eps=0.0)
    x = rng.standard_normal((3, 10))
    np.testing.assert_allclose(norm.forward(7.5 * x), norm.forward(x), rtol=1e-12)
    assert not np.allclose(norm.forward(x + 1.0), norm.forward(x))
    # With LLaMA's eps the invariance holds up to eps.
    norm.eps = 1e-5
    np.testing.assert_allclose(norm.forward(100 * x), norm.forward(x), rtol=1e-4)


def test_rmsnorm_output_has_unit_rms(rng):
    norm = tl.RMSNorm(np.ones(16), eps=1e-5)
    y = norm.forward(rng.standard_normal((4, 16)) * 3)
    np.testing.assert_allclose(np.sqrt(np.mean(y ** 2, axis=-1)), 1.0, rtol=1e-5)


def test_padded_position_does_not_affect_the_others(rng):
    model = make_model(rng)
    tokens = rng.integers(0, 23, size=(2, 7))
    # Left padding on row 1: its first three positions are padding.
    mask = np.ones((2, 7), bool)
    mask[1, :3] = False
    before = model.forward(tokens, attention_mask=mask)
    changed = tokens.copy()
    changed[1, :3] = (changed[1, :3] + 5) % 23
    after = model.forward(changed, attention_mask=mask)
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_allclose(after[1, 3:], before[1, 3:], rtol=1e-12, atol=1e-12)
    # Without the mask the padding would leak into the real positions.
    leaked = model.forward(changed)[1, 3:]
    assert not np.allclose(leaked, model.forward(tokens)[1, 3:])


def test_logits_at_chosen_positions_give_the_same_loss_and_gradients(rng):
    model = make_model(rng)
    tokens = rng.integers(0, 23, size=(2, 7))
    targets = np.full((2, 7), -1)
    targets[0, 4:6], targets[1, 6] = rng.integers(0, 23, 2), rng.integers(0, 23)
    loss_fn = tl.CrossEntropyLoss()
    full_loss, full_grads = model.loss_and_grads(tokens, targets)
    full_grads = {name: grad.copy() for name, grad in full_grads.items()}
    chosen = np.nonzero(targets >= 0)
    model.zero_grad()
    logits = model.forward(tokens, positions=chosen)
    assert logits.shape == (3, 23)
    np.testing.assert_allclose(logits, model.forward(tokens)[chosen], rtol=1e-12)
    model.forward(tokens, positions=chosen)
    loss = loss_fn.forward(logits, targets[chosen])
    model.backward(loss_fn.backward(1.0))
    np.testing.assert_allclose(loss, full_loss, rtol=1e-12)
    for name, grad in full_grads.items():
        np.testing.assert_allclose(model.grads[name], grad, rtol=1e-9, atol=1e-12, err_msg=name)
    # A position chosen twice counts twice, as it does in the loss.
    twice = (np.array([0, 0]), np.array([3, 3]))
    model.zero_grad()
    model.forward(tokens, positions=twice)
    model.backward(np.ones((2, 23)))
    once_grads = {name: grad.copy() for name, grad in model.grads.items()}
    model.zero_grad()
    model.forward(tokens, positions=(np.array([0]), np.array([3])))
    model.backward(2 * np.ones((1, 23)))
    for name, grad in once_grads.items():
        np.testing.assert_allclose(model.grads[name], grad, rtol=1e-9, atol=1e-12, err_msg=name)


def test_batch_rows_are_independent(rng):
    model = make_model(rng)
    tokens = rng.integers(0, 23, size=(3, 6))
    together = model.forward(tokens)
    for row in range(3):
        np.testing.assert_allclose(model.forward(tokens[row:row + 1])[0], together[row], rtol=1e-10)


def test_gqa_equals_mha_with_repeated_kv_heads(rng):
    gqa = make_model(rng, n_heads=4, n_kv_heads=2)
    mha = tl.Llama(tl.LlamaConfig(23, 24, 2, 4, 4, hidden_dim=40, max_seq_len=16), dtype=np.float64)
    head_dim = 6
    for name, value in gqa.params.items():
        if name.endswith(("wk.weight", "wv.weight")):
            heads = value.reshape(2, head_dim, 24)
            value = np.repeat(heads, 2, axis=0).reshape(4 * head_dim, 24)
        mha.params[name][...] = value
    tokens = rng.integers(0, 23, size=(2, 5))
    # atol: a logit near zero may differ in its last bits (seen: 7e-16), the sums' order differs.
    np.testing.assert_allclose(gqa.forward(tokens), mha.forward(tokens), rtol=1e-12, atol=1e-13)


# --- The API contract ---------------------------------------------------------------------

def test_parameter_names_and_shapes_follow_meta():
    config = tl.LlamaConfig(vocab_size=50, dim=32, n_layers=2, n_heads=4, n_kv_heads=2)
    model = tl.Llama(config)
    assert config.hidden_dim == 96  # 2/3 * 4 * 32 = 85 -> next multiple of 32
    expected = {"tok_embeddings.weight": (50, 32), "norm.weight": (32,), "output.weight": (50, 32)}
    for i in range(2):
        expected.update({
            f"layers.{i}.attention_norm.weight": (32,),
            f"layers.{i}.attention.wq.weight": (32, 32),
            f"layers.{i}.attention.wk.weight": (16, 32),
            f"layers.{i}.attention.wv.weight": (16, 32),
            f"layers.{i}.attention.wo.weight": (32, 32),
            f"layers.{i}.ffn_norm.weight": (32,),
            f"layers.{i}.feed_forward.w1.weight": (96, 32),
            f"layers.{i}.feed_forward.w2.weight": (32, 96),
            f"layers.{i}.feed_forward.w3.weight": (96, 32),
        })
    assert {name: p.shape for name, p in model.params.items()} == expected
    tied = tl.Llama(tl.LlamaConfig(50, 32, 2, 4, tie_embeddings=True))
    assert set(tied.params) == set(expected) - {"output.weight"}


@pytest.mark.parametrize("tied", [False, True])
def test_weight_matrices_are_stored_column_by_column(tied):
    """llama.py's memory order: weight matrices "F" (so that W.T, which x @ W.T multiplies
    by, lies row by row), the embedding table "C" unless it is also the output matrix; each
    gradient in its parameter's order. Random and zero (checkpoint-loading) models alike."""
    config = tl.LlamaConfig(vocab_size=50, dim=32, n_layers=2, n_heads=4, n_kv_heads=2,
                            tie_embeddings=tied)
    for model in (tl.Llama(config), tl.Llama(config, random_init=False)):
        for name, value in model.params.items():
            if value.ndim == 1:
                continue
            column_by_column = name != "tok_embeddings.weight" or tied
            for array in (value, model.grads[name]):
                assert array.flags.f_contiguous == column_by_column, name
                assert array.flags.c_contiguous == (not column_by_column), name


def test_hidden_dim_rule_matches_known_models():
    assert tl.default_hidden_dim(288) == 768  # llama2.c stories15M
    assert tl.default_hidden_dim(512) == 1376  # llama2.c stories42M
    assert tl.default_hidden_dim(768) == 2048  # llama2.c stories110M
    assert tl.default_hidden_dim(4096, multiple_of=256) == 11008  # LLaMA 7B


def test_initialisation_statistics():
    config = tl.LlamaConfig(vocab_size=512, dim=128, n_layers=8, n_heads=4)
    model = tl.Llama(config, seed=0)
    assert model.params["layers.0.attention.wq.weight"].std() == pytest.approx(0.02, rel=0.02)
    assert model.params["tok_embeddings.weight"].std() == pytest.approx(0.02, rel=0.02)
    residual = 0.02 / np.sqrt(2 * 8)
    assert model.params["layers.3.attention.wo.weight"].std() == pytest.approx(residual, rel=0.02)
    assert model.params["layers.3.feed_forward.w2.weight"].std() == pytest.approx(residual, rel=0.02)
    assert np.all(model.params["layers.5.ffn_norm.weight"] == 1)
    same = tl.Llama(config, seed=0)
    other = tl.Llama(config, seed=1)
    np.testing.assert_array_equal(same.params["output.weight"], model.params["output.weight"])
    assert not np.array_equal(other.params["output.weight"], model.params["output.weight"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept_end_to_end(rng, dtype):
    model = tl.Llama(tl.LlamaConfig(30, 16, 1, 2), dtype=dtype)
    tokens = rng.integers(0, 30, size=(2, 4))
    assert model.forward(tokens).dtype == dtype
    loss, grads = model.loss_and_grads(tokens, tokens)
    assert np.isfinite(loss)
    assert all(g.dtype == dtype for g in grads.values())
    assert all(p.dtype == dtype for p in model.params.values())


def test_float32_matches_float64(rng):
    model64 = make_model(rng)
    model32 = tl.Llama(model64.config, dtype=np.float32)
    for name, value in model64.params.items():
        model32.params[name][...] = value
    tokens = rng.integers(0, 23, size=(2, 8))
    np.testing.assert_allclose(model32.forward(tokens), model64.forward(tokens), rtol=1e-4, atol=1e-4)


def test_tied_gradient_is_sum_of_both_uses(rng):
    tied = make_model(rng, tie_embeddings=True)
    untied = tl.Llama(tl.LlamaConfig(**{**tied.config.to_dict(), "tie_embeddings": False}),
                      dtype=np.float64)
    for name, value in tied.params.items():
        untied.params[name][...] = value
    untied.params["output.weight"][...] = tied.params["tok_embeddings.weight"]
    tokens = rng.integers(0, 23, size=(2, 5))
    tied_loss, tied_grads = tied.loss_and_grads(tokens, tokens)
    untied_loss, untied_grads = untied.loss_and_grads(tokens, tokens)
    assert tied_loss == pytest.approx(untied_loss, rel=1e-12)
    np.testing.assert_allclose(tied_grads["tok_embeddings.weight"],
                               untied_grads["tok_embeddings.weight"] + untied_grads["output.weight"],
                               rtol=1e-10, atol=1e-14)


def test_loss_at_initialisation_is_log_vocab(rng):
    model = tl.Llama(tl.LlamaConfig(vocab_size=300, dim=32, n_layers=2, n_heads=4), seed=0)
    tokens = rng.integers(0, 300, size=(4, 16))
    loss, _ = model.loss_and_grads(tokens, np.roll(tokens, -1, axis=1))
    assert loss == pytest.approx(np.log(300), rel=0.01)


# --- Bad input: a clear ValueError naming the problem -------------------------------------

@pytest.mark.parametrize("kwargs,message", [
    (dict(vocab_size=10, dim=30, n_layers=1, n_heads=4), "divisible by n_heads"),
    (dict(vocab_size=10, dim=24, n_layers=1, n_heads=6, n_kv_heads=4), "divisible by n_kv_heads"),
    (dict(vocab_size=0, dim=24, n_layers=1, n_heads=4), "vocab_size"),
    (dict(vocab_size=10, dim=12, n_layers=1, n_heads=4), "even"),
    (dict(vocab_size=10, dim=24, n_layers=1.5, n_heads=4), "n_layers"),
])
def test_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tl.LlamaConfig(**kwargs)


def test_bad_tokens():
    model = tl.Llama(tl.LlamaConfig(vocab_size=10, dim=8, n_layers=1, n_heads=2, max_seq_len=6))
    with pytest.raises(ValueError, match="token id 10 is out of range"):
        model.forward(np.array([[1, 10]]))
    with pytest.raises(ValueError, match="token id -3 is out of range"):
        model.forward(np.array([[-3, 1]]))
    with pytest.raises(ValueError, match="longer than max_seq_len=6"):
        model.forward(np.zeros((1, 7), int))
    with pytest.raises(ValueError, match=r"shape \(batch, seq_len\)"):
        model.forward(np.zeros(5, int))
    with pytest.raises(ValueError, match="integers"):
        model.forward(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="targets shape"):
        model.loss_and_grads(np.zeros((1, 3), int), np.zeros((1, 4), int))
    with pytest.raises(ValueError, match="target 10 is out of range"):
        model.loss_and_grads(np.zeros((1, 3), int), np.array([[1, 10, 2]]))
    with pytest.raises(ValueError, match="nothing to predict"):
        model.loss_and_grads(np.zeros((1, 3), int), -np.ones((1, 3), int))
    with pytest.raises(ValueError, match="floating-point"):
        tl.Llama(model.config, dtype=np.int32)
    with pytest.raises(ValueError, match="attention_mask shape"):
        model.forward(np.zeros((2, 3), int), attention_mask=np.ones((2, 4), bool))
