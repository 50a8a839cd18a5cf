"""RoPE scaling (llama3, linear, GGUF's freq_factors) against transformers' frequencies."""

import json

import numpy as np
import pytest

import tinyllama_np as tl
from tinyllama_np.nn.position import scaled_frequencies

LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}


def base_frequencies(head_dim=64, theta=500000.0):
    return 1.0 / theta ** (np.arange(0, head_dim, 2) / head_dim)


@pytest.mark.reference
def test_llama3_frequencies_match_transformers():
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    config = transformers.LlamaConfig(hidden_size=256, num_attention_heads=4,
                                      rope_theta=500000.0, max_position_embeddings=131072,
                                      rope_scaling=dict(LLAMA3))
    inv_freq, _ = ROPE_INIT_FUNCTIONS["llama3"](config, "cpu")
    ours = scaled_frequencies(base_frequencies(), LLAMA3)
    np.testing.assert_allclose(ours, inv_freq.double().numpy(), rtol=1e-6)
    # The three regimes: short wavelengths kept, long ones divided by 8, a blend between.
    base = base_frequencies()
    assert ours[0] == base[0] and np.isclose(ours[-1], base[-1] / 8)
    assert np.any((ours < base) & (ours > base / 8))


def test_linear_and_freq_factors():
    base = base_frequencies()
    np.testing.assert_allclose(scaled_frequencies(base, {"rope_type": "linear", "factor": 4.0}),
                               base / 4)
    factors = np.linspace(1, 3, 32)
    np.testing.assert_allclose(
        scaled_frequencies(base, {"rope_type": "freq_factors", "factors": factors.tolist()}),
        base / factors)


def test_hf_folder_with_llama3_scaling_loads_and_round_trips(tmp_path):
    config = tl.LlamaConfig(vocab_size=32, dim=64, n_layers=1, n_heads=2, hidden_dim=64,
                            max_seq_len=16, rope_scaling=dict(LLAMA3))
    model = tl.Llama(config, seed=0)
    tl.save_checkpoint(model, tmp_path / "hf", format="hf")
    stored = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert stored["rope_scaling"] == LLAMA3
    loaded = tl.load_checkpoint(tmp_path / "hf")
    assert loaded.config.rope_scaling == LLAMA3
    tokens = np.array([[1, 2, 3, 4, 5]])
    np.testing.assert_array_equal(loaded.forward(tokens), model.forward(tokens))
    tl.save_checkpoint(model, tmp_path / "m.npz")
    assert tl.load_checkpoint(tmp_path / "m.npz").config == config
    with pytest.raises(ValueError, match="RoPE scaling"):
        tl.save_checkpoint(model, tmp_path / "m.bin", format="llama2c")


def test_bad_scaling_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not implemented"):
        tl.LlamaConfig(vocab_size=8, dim=8, n_layers=1, n_heads=1,
                       rope_scaling={"rope_type": "yarn", "factor": 4.0})
    with pytest.raises(ValueError, match="needs exactly the fields"):
        tl.LlamaConfig(vocab_size=8, dim=8, n_layers=1, n_heads=1,
                       rope_scaling={"rope_type": "llama3", "factor": 4.0})
    model = tl.Llama(tl.LlamaConfig(vocab_size=8, dim=8, n_layers=1, n_heads=1), seed=0)
    tl.save_checkpoint(model, tmp_path, format="hf")
    config = json.loads((tmp_path / "config.json").read_text())
    config["rope_scaling"] = {"rope_type": "dynamic", "factor": 2.0}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="'dynamic' is not implemented"):
        tl.load_checkpoint(tmp_path)


@pytest.mark.parametrize("scaling", [LLAMA3, {"rope_type": "linear", "factor": 4.0}])
def test_rope_backward_with_scaled_frequencies_passes_gradcheck(scaling, rng):
    # Only the table changes, so the unchanged backward must still be exact.
    scaling = dict(scaling, **({"original_max_position_embeddings": 16}
                               if scaling["rope_type"] == "llama3" else {}))
    rope = tl.RoPE(tl.rope_rotations(8, 32, 500.0, scaling))
    report = tl.gradcheck(rope, rng.standard_normal((2, 7, 3, 8)), start_pos=5)
    assert max(report.values()) < 1e-6, report
