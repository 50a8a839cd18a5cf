"""LoRA: the layer's gradients, adapters in a model (frozen base, no gradient buffers, no
optimizer state), merging, and adapters saved and loaded (ours and PEFT's layout)."""

import json

import numpy as np
import pytest

import tinyllama_np as tl
from tinyllama_np.training.optim import AdamW

ALL_TARGETS = ("wq", "wk", "wv", "wo", "w1", "w2", "w3", "output")


def random_lora(rng, out_features, in_features, rank, alpha=16.0, dropout=0.0):
    layer = tl.LoRALinear(rng.standard_normal((out_features, in_features)), rank, alpha, dropout)
    # B starts at zero, where dA = 0: give it values so every path is exercised.
    layer.params["lora_B"][...] = rng.standard_normal(layer.params["lora_B"].shape)
    return layer


@pytest.mark.parametrize("rank", [1, 4, 8])
def test_lora_linear_gradients(rank, rng):
    layer = random_lora(rng, 9, 11, rank)
    report = tl.gradcheck(layer, rng.standard_normal((3, 5, 11)))
    assert set(report) == {"input 0", "param lora_A", "param lora_B"}  # W is frozen: no gradient
    assert max(report.values()) < 1e-6, report


def test_lora_linear_gradients_with_dropout(rng):
    layer = random_lora(rng, 9, 11, 4, dropout=0.3)
    x = rng.standard_normal((2, 5, 11))
    keep = rng.random(x.shape) >= 0.3
    report = tl.gradcheck(layer, x, keep_mask=keep)
    assert max(report.values()) < 1e-6, report
    # The mask really drops: the low-rank path differs from the one without dropout.
    dropped = layer.forward(x, keep_mask=keep)
    layer.training = False  # evaluation: no dropout, the mask is ignored
    assert not np.allclose(layer.forward(x, keep_mask=keep), dropped)


def test_lora_linear_has_no_weight_gradient_and_starts_at_base(rng):
    weight = rng.standard_normal((6, 5))
    layer = tl.LoRALinear(weight, 2, 4.0)
    assert "weight" not in layer.grads and layer.params["weight"] is weight
    x = rng.standard_normal((2, 3, 5))
    np.testing.assert_array_equal(layer.forward(x), tl.Linear(weight).forward(x))
    np.testing.assert_allclose(layer.merged_weight(), weight)


@pytest.mark.parametrize("rank, message", [(0, "positive integer"), (6, "larger than"),
                                           (2.5, "positive integer")])
def test_lora_linear_refuses_bad_rank(rank, message):
    with pytest.raises(ValueError, match=message):
        tl.LoRALinear(np.zeros((5, 4)), rank, 8.0)


def small_model(rng, tie_embeddings=False, n_kv_heads=1):
    config = tl.LlamaConfig(17, 12, 2, 2, n_kv_heads=n_kv_heads, hidden_dim=20, max_seq_len=8,
                            tie_embeddings=tie_embeddings)
    model = tl.Llama(config, dtype=np.float64)
    for param in model.params.values():
        param[...] = 1 + 0.2 * rng.standard_normal(param.shape) if param.ndim == 1 else \
            rng.standard_normal(param.shape) / 3
    return model


def test_apply_lora_freezes_base_and_starts_from_it(rng):
    model = small_model(rng)
    tokens = rng.integers(0, 17, (2, 6))
    before = model.forward(tokens).copy()
    base_names = set(model.params)
    tl.apply_lora(model, targets=("wq", "wv"), rank=2, alpha=4)
    np.testing.assert_array_equal(model.forward(tokens), before)
    adapters = {f"layers.{i}.attention.{t}.lora_{m}" for i in (0, 1) for t in ("wq", "wv") for m in "AB"}
    assert set(model.params) == base_names | adapters
    assert set(model.grads) == adapters  # no gradient buffer for any base weight
    for module in model.submodules():
        assert all(not key.endswith("weight") for key in module.grads), type(module).__name__
    optimizer = AdamW(model.params, frozen=base_names)
    assert set(optimizer.m) == adapters and set(optimizer.v) == adapters


def test_model_gradients_with_every_target(rng):
    model = small_model(rng, n_kv_heads=1)
    tl.apply_lora(model, targets=ALL_TARGETS, rank=2, alpha=3)
    for name in model.grads:
        model.params[name][...] = rng.standard_normal(model.params[name].shape) / 3
    report = tl.gradcheck(model, rng.integers(0, 17, (2, 5)))
    assert len(report) == 2 * 2 * 7 + 2
    assert max(report.values()) < 1e-6, report


def test_training_changes_only_adapters_and_merge_keeps_outputs(rng):
    model = small_model(rng)
    frozen = {name: value.copy() for name, value in model.params.items()}
    tl.apply_lora(model, targets=("wq", "wk", "w2"), rank=3, alpha=6)
    optimizer = AdamW(model.params, lr=1e-2, frozen=frozen)
    tokens, targets = rng.integers(0, 17, (2, 6)), rng.integers(0, 17, (2, 6))
    first, _ = model.loss_and_grads(tokens, targets)
    for _ in range(20):
        _, grads = model.loss_and_grads(tokens, targets)
        optimizer.step(grads)
    last, _ = model.loss_and_grads(tokens, targets)
    assert last < first
    for name, value in frozen.items():
        np.testing.assert_array_equal(model.params[name], value)
    adapted = model.forward(tokens).copy()
    tl.merge_lora(model)
    assert set(model.params) == set(frozen) and not tl.lora_layers(model)
    np.testing.assert_allclose(model.forward(tokens), adapted, atol=1e-12)
    reloaded = tl.Llama(model.config, dtype=np.float64)
    for name, value in model.params.items():
        reloaded.params[name][...] = value
    np.testing.assert_allclose(reloaded.forward(tokens), adapted, atol=1e-12)


@pytest.mark.parametrize("kwargs, message", [
    ({"targets": ("wq", "attention")}, "matches no layer"),
    ({"targets": ()}, "at least one"),
    ({"rank": 0}, "positive integer"),
    ({"rank": 13}, "larger than"),
    ({"dropout": 1.0}, "dropout"),
])
def test_apply_lora_refuses_bad_arguments_and_changes_nothing(kwargs, message, rng):
    model = small_model(rng)
    with pytest.raises(ValueError, match=message):
        tl.apply_lora(model, **kwargs)
    assert set(model.grads) == set(model.params) and not tl.lora_layers(model)


def test_apply_lora_refuses_twice_and_tied_output(rng):
    model = small_model(rng)
    tl.apply_lora(model, rank=2)
    with pytest.raises(ValueError, match="already has LoRA"):
        tl.apply_lora(model, rank=2)
    with pytest.raises(ValueError, match="tie_embeddings"):
        tl.apply_lora(small_model(rng, tie_embeddings=True), targets=("output",))


def trained_adapter_model(rng, targets=("wq", "wk", "wv", "w1", "output"), n_kv_heads=1):
    model = small_model(rng, n_kv_heads=n_kv_heads)
    tl.apply_lora(model, targets=targets, rank=2, alpha=5)
    for name in model.grads:
        model.params[name][...] = rng.standard_normal(model.params[name].shape) / 3
    return model


@pytest.mark.parametrize("format", ["npz", "peft"])
def test_adapter_round_trip(format, tmp_path, rng):
    model = trained_adapter_model(rng)
    tokens = rng.integers(0, 17, (2, 6))
    expected = model.forward(tokens).copy()
    path = tmp_path / ("adapter.npz" if format == "npz" else "adapter")
    tl.save_adapter(model, path, format=format)
    fresh = tl.Llama(model.config, dtype=np.float64)
    for name, value in model.params.items():
        if name in fresh.params:
            fresh.params[name][...] = value
    tl.load_adapter(fresh, path)
    assert fresh.lora_config == model.lora_config
    np.testing.assert_allclose(fresh.forward(tokens), expected, atol=1e-6)  # saved as float32
    tl.load_adapter(fresh, path)  # into a model that has the adapters already
    np.testing.assert_allclose(fresh.forward(tokens), expected, atol=1e-6)


def test_peft_layout_names_and_permuted_b(tmp_path, rng):
    model = trained_adapter_model(rng, targets=("wq", "wv"))
    tl.save_adapter(model, tmp_path / "peft", format="peft")
    config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert config["r"] == 2 and config["lora_alpha"] == 5 and config["target_modules"] == ["q_proj", "v_proj"]
    stored = tl.checkpoint.read_safetensors(tmp_path / "peft" / "adapter_model.safetensors")
    name = "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight"
    order = tl.checkpoint.rope_row_order(2, 6)
    np.testing.assert_allclose(stored[name].data, model.params["layers.1.attention.wq.lora_B"][order], rtol=1e-7)
    v_name = "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"
    np.testing.assert_allclose(stored[v_name].data, model.params["layers.1.attention.wv.lora_B"], rtol=1e-7)


def test_adapter_for_another_model_is_refused(tmp_path, rng):
    tl.save_adapter(trained_adapter_model(rng), tmp_path / "a.npz")
    tl.save_adapter(trained_adapter_model(rng), tmp_path / "peft", format="peft")
    other = tl.Llama(tl.LlamaConfig(17, 16, 2, 2, hidden_dim=20, max_seq_len=8), dtype=np.float64)
    for path in (tmp_path / "a.npz", tmp_path / "peft"):
        with pytest.raises(ValueError, match="different base model"):
            tl.load_adapter(other, path)
        assert not tl.lora_layers(other)
    (tmp_path / "bad.npz").write_bytes(b"PK not a zip")
    with pytest.raises(ValueError, match="bad.npz"):
        tl.load_adapter(other, tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="no LoRA adapters"):
        tl.save_adapter(other, tmp_path / "none.npz")
    assert not (tmp_path / "none.npz").exists()


@pytest.mark.reference
def test_peft_loads_our_adapter_on_the_hugging_face_export(tmp_path, rng):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    config = tl.LlamaConfig(vocab_size=61, dim=48, n_layers=2, n_heads=6, n_kv_heads=2,
                            hidden_dim=72, max_seq_len=32)
    model = tl.Llama(config, seed=3)
    tl.save_checkpoint(model, tmp_path / "base", format="hf")
    tl.apply_lora(model, targets=("wq", "wk", "wv", "wo", "w1", "w2", "w3", "output"), rank=4, alpha=8)
    for name in model.grads:  # a "trained" adapter: B no longer zero
        model.params[name][...] = rng.standard_normal(model.params[name].shape) * 0.05
    tl.save_adapter(model, tmp_path / "adapter", format="peft")
    tokens = rng.integers(0, 61, (2, 13))
    hf_model = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "base", dtype=torch.float32)
    peft_model = peft.PeftModel.from_pretrained(hf_model, str(tmp_path / "adapter")).eval()
    with torch.no_grad():
        theirs = peft_model(torch.tensor(tokens)).logits.numpy()
    ours = model.forward(tokens)
    assert np.abs(ours - tl.Llama(config, seed=3).forward(tokens)).max() > 1e-2  # the adapter matters
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=2e-5)
    # And back: PEFT's own save of that adapter loads here to the same logits.
    # (save_embedding_layers=False: with lm_head targeted PEFT would also store its full weight.)
    peft_model.save_pretrained(tmp_path / "resaved", save_embedding_layers=False)
    again = tl.load_checkpoint(tmp_path / "base")
    tl.load_adapter(again, tmp_path / "resaved")
    np.testing.assert_allclose(again.forward(tokens), ours, rtol=0, atol=2e-5)


def test_freezing_a_tied_embedding_drops_both_uses_of_its_gradient(rng):
    model = small_model(rng, tie_embeddings=True)
    model.freeze(["tok_embeddings.weight", "layers.0.attention_norm.weight"])
    assert "weight" not in model.output.grads and "weight" not in model.tok_embeddings.grads
    assert "tok_embeddings.weight" not in model.grads and "layers.0.attention_norm.weight" not in model.grads
    report = tl.gradcheck(model, rng.integers(0, 17, (2, 5)))
    assert len(report) == len(model.params) - 2 and max(report.values()) < 1e-6
