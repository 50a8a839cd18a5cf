"""Checkpoints: every format round-trips exactly; files written by hand (byte by byte, the way
llama2.c and Hugging Face lay them out) load to the expected weights; the q/k row permutation
makes Hugging Face's rotate-half RoPE equal Meta's interleaved RoPE; the convert command."""

import json
import os
import struct

import numpy as np
import pytest

import tinyllama_np as tl
from tinyllama_np.checkpoint import read_safetensors, rope_row_order, write_safetensors
from tinyllama_np.checkpoint.tensors import (bfloat16_to_float32, count_weights,
                                             float32_to_bfloat16, param_shapes)

CONFIGS = {
    "mha_untied": tl.LlamaConfig(vocab_size=37, dim=24, n_layers=2, n_heads=4, hidden_dim=40,
                                 max_seq_len=16),
    "gqa_untied": tl.LlamaConfig(vocab_size=29, dim=48, n_layers=3, n_heads=6, n_kv_heads=2,
                                 max_seq_len=12),
    "gqa_tied": tl.LlamaConfig(vocab_size=31, dim=32, n_layers=2, n_heads=4, n_kv_heads=1,
                               hidden_dim=24, max_seq_len=10, tie_embeddings=True),
}
EXACT_FORMATS = ["npz", "llama2c", "llama2c-v1", "hf"]


def model_for(name, dtype=np.float32):
    model = tl.Llama(CONFIGS[name], seed=11, dtype=dtype)
    rng = np.random.default_rng(5)
    for param in model.params.values():  # norm scales away from 1, so a mix-up would show
        param[...] = param + rng.standard_normal(param.shape).astype(dtype) * 0.1
    return model


def tokens_for(config):
    return np.random.default_rng(0).integers(0, config.vocab_size, (2, config.max_seq_len))


def assert_same_params(a, b):
    assert list(a.params) == list(b.params)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name], err_msg=name)


def test_param_shapes_match_the_model():
    for config in CONFIGS.values():
        model = tl.Llama(config)
        assert list(param_shapes(config).items()) == [(k, v.shape) for k, v in model.params.items()]
        assert count_weights(config) == model.num_params()


def test_model_without_random_init_is_zeros_and_ones():
    model = tl.Llama(CONFIGS["gqa_tied"], random_init=False)
    for name, value in model.params.items():
        assert np.all(value == (1 if "norm" in name else 0)), name
    assert model.output.params["weight"] is model.tok_embeddings.params["weight"]


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("form", EXACT_FORMATS)
def test_round_trip_gives_identical_logits(name, form, tmp_path):
    model = model_for(name)
    path = tl.save_checkpoint(model, tmp_path / "checkpoint", format=form)
    assert tl.checkpoint_format(path) == form
    loaded = tl.load_checkpoint(path)
    assert loaded.config == model.config
    assert loaded.dtype == np.float32
    assert_same_params(loaded, model)
    for name, value in loaded.params.items():  # loading keeps llama.py's memory order
        assert value.flags.f_contiguous == model.params[name].flags.f_contiguous, name
    tokens = tokens_for(model.config)
    np.testing.assert_array_equal(loaded.forward(tokens), model.forward(tokens))
    if model.config.tie_embeddings:  # still one shared matrix after loading
        assert loaded.output.params["weight"] is loaded.tok_embeddings.params["weight"]


def test_npz_keeps_float64_exactly_and_loads_into_any_dtype(tmp_path):
    model = model_for("gqa_untied", np.float64)
    path = tl.save_checkpoint(model, tmp_path / "m.npz")
    assert_same_params(tl.load_checkpoint(path, dtype=np.float64), model)
    as32 = tl.load_checkpoint(path)
    assert as32.dtype == np.float32
    for name, value in model.params.items():
        np.testing.assert_array_equal(as32.params[name], value.astype(np.float32))
    # The file is a plain npz: NumPy opens it without pickle.
    with np.load(path, allow_pickle=False) as archive:
        np.testing.assert_array_equal(archive["layers.1.attention.wk.weight"],
                                      model.params["layers.1.attention.wk.weight"])
        stored = json.loads(archive["__config__"].tobytes())
        assert stored["config"]["n_kv_heads"] == 2


def test_training_output_folder_loads_its_model_npz(tmp_path):
    model = model_for("mha_untied")
    written = tl.save_checkpoint(model, tmp_path)  # an existing folder: FOLDER/model.npz
    assert written == os.path.join(tmp_path, "model.npz")
    (tmp_path / "tokenizer.json").write_text("{}")
    assert tl.checkpoint_format(tmp_path) == "npz"
    assert_same_params(tl.load_checkpoint(tmp_path), model)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_hf_half_precision_round_trip_is_exact_rounding(dtype, tmp_path):
    model = model_for("gqa_tied")
    tl.save_checkpoint(model, tmp_path / "hf", format="hf", dtype=dtype)
    loaded = tl.load_checkpoint(tmp_path / "hf")
    for name, value in model.params.items():
        if dtype == "bfloat16":
            expected = bfloat16_to_float32(float32_to_bfloat16(value))
        else:
            expected = value.astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(loaded.params[name], expected, err_msg=name)
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["torch_dtype"] == dtype


def test_bfloat16_bits():
    bits = np.array([0x3F80, 0xC000, 0x0001, 0x7F80, 0xFF80, 0x8000, 0x4049], np.uint16)
    expected = [1.0, -2.0, 2.0 ** -133, np.inf, -np.inf, -0.0, 3.140625]
    np.testing.assert_array_equal(bfloat16_to_float32(bits), np.array(expected, np.float32))
    assert np.isnan(bfloat16_to_float32(np.array([0x7FC0], np.uint16)))[0]
    # Rounding to nearest, ties to even: 1 + 2^-8 is halfway between 1 (even) and 1 + 2^-7.
    values = np.array([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, np.nan, -np.inf,
                       3.4e38], np.float32)
    np.testing.assert_array_equal(float32_to_bfloat16(values)[[0, 1, 2, 4, 5]],
                                  [0x3F80, 0x3F82, 0x3F81, 0xFF80, 0x7F80])
    assert np.isnan(bfloat16_to_float32(float32_to_bfloat16(values)[3:4]))[0]
    # Every bfloat16 survives the trip to float32 and back.
    every = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    finite = np.isfinite(bfloat16_to_float32(every))
    np.testing.assert_array_equal(float32_to_bfloat16(bfloat16_to_float32(every))[finite],
                                  every[finite])


# ------------------------------------------------------------------- files written by hand

def handmade_weights(config):
    """Distinct, recognisable values: tensor k holds k*1000 + 0, 1, 2, ..."""
    return {name: (index * 1000 + np.arange(np.prod(shape))).reshape(shape).astype(np.float32)
            for index, (name, shape) in enumerate(param_shapes(config).items())}


def pack_floats(values):
    values = np.ravel(values)
    return struct.pack(f"<{len(values)}f", *values)


@pytest.mark.parametrize("tied", [False, True])
def test_llama2c_legacy_file_written_by_hand(tied, tmp_path):
    c = tl.LlamaConfig(vocab_size=11, dim=8, n_layers=2, n_heads=2, n_kv_heads=1,
                       hidden_dim=12, max_seq_len=5, tie_embeddings=tied)
    w = handmade_weights(c)
    layers = range(c.n_layers)
    # The order of llama2.c's export.py legacy_export and run.c's memory_map_weights.
    data = struct.pack("<7i", 8, 12, 2, 2, 1, 11 if tied else -11, 5)
    data += pack_floats(w["tok_embeddings.weight"])
    for part in ["attention_norm", "attention.wq", "attention.wk", "attention.wv",
                 "attention.wo", "ffn_norm", "feed_forward.w1", "feed_forward.w2",
                 "feed_forward.w3"]:
        for i in layers:
            data += pack_floats(w[f"layers.{i}.{part}.weight"])
    data += pack_floats(w["norm.weight"])
    data += pack_floats(np.full(5 * 4 // 2, 7.0)) + pack_floats(np.full(5 * 4 // 2, 8.0))
    if not tied:
        data += pack_floats(w["output.weight"])
    (tmp_path / "hand.bin").write_bytes(data)
    model = tl.load_checkpoint(tmp_path / "hand.bin")
    assert model.config == c
    for name, value in w.items():
        np.testing.assert_array_equal(model.params[name], value, err_msg=name)
    # And our writer produces these very bytes (the RoPE tables aside, which we compute).
    tl.save_checkpoint(model, tmp_path / "ours.bin", format="llama2c")
    ours = (tmp_path / "ours.bin").read_bytes()
    table_start = len(data) - (0 if tied else 4 * 11 * 8) - 2 * 4 * 10
    assert len(ours) == len(data)
    assert ours[:table_start] == data[:table_start]
    assert ours[table_start + 80:] == data[table_start + 80:]


@pytest.mark.parametrize("tied", [False, True])
def test_llama2c_version1_file_written_by_hand(tied, tmp_path):
    c = tl.LlamaConfig(vocab_size=11, dim=8, n_layers=2, n_heads=2, hidden_dim=12,
                       max_seq_len=5, tie_embeddings=tied)
    w = handmade_weights(c)
    layers = range(c.n_layers)
    header = struct.pack("<I", 0x616B3432) + struct.pack("<i", 1)
    header += struct.pack("<7i", 8, 12, 2, 2, 2, 11, 5) + struct.pack("<B", int(tied))
    data = header + b"\0" * (256 - len(header))
    # The order of llama2.c's export.py version1_export.
    for part in ["attention_norm", "ffn_norm"]:
        for i in layers:
            data += pack_floats(w[f"layers.{i}.{part}.weight"])
    data += pack_floats(w["norm.weight"]) + pack_floats(w["tok_embeddings.weight"])
    for part in ["attention.wq", "attention.wk", "attention.wv", "attention.wo",
                 "feed_forward.w1", "feed_forward.w2", "feed_forward.w3"]:
        for i in layers:
            data += pack_floats(w[f"layers.{i}.{part}.weight"])
    if not tied:
        data += pack_floats(w["output.weight"])
    (tmp_path / "hand.bin").write_bytes(data)
    assert data[:4] == b"24ka"  # the magic "ak42", little-endian
    model = tl.load_checkpoint(tmp_path / "hand.bin")
    assert model.config == c
    for name, value in w.items():
        np.testing.assert_array_equal(model.params[name], value, err_msg=name)
    tl.save_checkpoint(model, tmp_path / "ours.bin", format="llama2c-v1")
    assert (tmp_path / "ours.bin").read_bytes() == data


def test_llama2c_refuses_what_it_cannot_store(tmp_path):
    config = tl.LlamaConfig(vocab_size=11, dim=8, n_layers=1, n_heads=2, rope_theta=500000.0)
    with pytest.raises(ValueError, match="rope_theta"):
        tl.save_checkpoint(tl.Llama(config), tmp_path / "m.bin", format="llama2c")
    assert not (tmp_path / "m.bin").exists()
    with pytest.raises(ValueError, match="float32"):
        tl.save_checkpoint(model_for("mha_untied"), tmp_path / "m.bin", format="llama2c",
                           dtype="float16")


def test_safetensors_file_written_by_hand(tmp_path):
    # Header: F32 matrix, BF16 vector, F16 vector; offsets relative to the data start.
    header = {"__metadata__": {"format": "pt"},
              "m": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
              "b": {"dtype": "BF16", "shape": [2], "data_offsets": [24, 28]},
              "h": {"dtype": "F16", "shape": [2], "data_offsets": [28, 32]}}
    text = json.dumps(header).encode()
    data = struct.pack("<Q", len(text)) + text + struct.pack("<6f", 1, 2, 3, 4, 5, -6)
    data += struct.pack("<2H", 0x3F80, 0xC040) + struct.pack("<2e", 0.5, -1.5)
    (tmp_path / "hand.safetensors").write_bytes(data)
    tensors = read_safetensors(tmp_path / "hand.safetensors")
    got = {}
    for name, stored in tensors.items():
        got[name] = np.empty(stored.shape, np.float32)
        stored.copy_into(got[name])
    np.testing.assert_array_equal(got["m"], [[1, 2, 3], [4, 5, -6]])
    np.testing.assert_array_equal(got["b"], [1.0, -3.0])
    np.testing.assert_array_equal(got["h"], [0.5, -1.5])


# ------------------------------------------------------------------- Hugging Face specifics

def hf_permute(weight, n_heads):
    """The well-known permutation of transformers' convert_llama_weights_to_hf.py, as NumPy:
    view(n_heads, head_dim // 2, 2, dim).transpose(1, 2).reshape(rows, dim)."""
    rows, dim = weight.shape
    return weight.reshape(n_heads, rows // n_heads // 2, 2, dim).swapaxes(1, 2).reshape(rows, dim)


def rotate_half_rope(x, theta):
    """Hugging Face's RoPE for x (T, H, hd): pairs (i, i + hd/2), cos/sin repeated twice."""
    seq_len, _, head_dim = x.shape
    inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2) / head_dim)
    angles = np.outer(np.arange(seq_len), inv_freq)
    cos = np.cos(np.concatenate([angles, angles], -1))[:, None, :]
    sin = np.sin(np.concatenate([angles, angles], -1))[:, None, :]
    half = head_dim // 2
    rotated = np.concatenate([-x[..., half:], x[..., :half]], -1)
    return x * cos + rotated * sin


def test_rope_row_order_is_the_hf_permutation():
    assert rope_row_order(1, 6).tolist() == [0, 2, 4, 1, 3, 5]
    weight = np.random.default_rng(0).standard_normal((3 * 8, 5))
    np.testing.assert_array_equal(weight[rope_row_order(3, 8)], hf_permute(weight, 3))


def test_hf_rotate_half_on_permuted_weights_equals_meta_rope():
    rng = np.random.default_rng(1)
    seq_len, dim, n_heads, n_kv_heads, theta = 7, 24, 4, 2, 5000.0
    head_dim = dim // n_heads
    x = rng.standard_normal((seq_len, dim))
    wq = rng.standard_normal((n_heads * head_dim, dim))
    wk = rng.standard_normal((n_kv_heads * head_dim, dim))
    rope = tl.RoPE(tl.rope_rotations(head_dim, seq_len, theta))
    q_meta = rope.forward((x @ wq.T).reshape(1, seq_len, n_heads, head_dim))[0]
    k_meta = rope.forward((x @ wk.T).reshape(1, seq_len, n_kv_heads, head_dim))[0]
    q_hf = (x @ hf_permute(wq, n_heads).T).reshape(seq_len, n_heads, head_dim)
    k_hf = (x @ hf_permute(wk, n_kv_heads).T).reshape(seq_len, n_kv_heads, head_dim)
    q_hf, k_hf = rotate_half_rope(q_hf, theta), rotate_half_rope(k_hf, theta)
    # Same vectors, dimensions listed in another order within each head...
    np.testing.assert_allclose(q_hf, q_meta[..., rope_row_order(1, head_dim)], atol=1e-12)
    # ... so every attention score q.k (query head h uses kv head h // 2) is the same.
    scores_meta = np.einsum("thd,shd->hts", q_meta, np.repeat(k_meta, 2, axis=1))
    scores_hf = np.einsum("thd,shd->hts", q_hf, np.repeat(k_hf, 2, axis=1))
    np.testing.assert_allclose(scores_hf, scores_meta, atol=1e-10)
    # Without the permutation the scores differ: the test can fail.
    q_wrong = rotate_half_rope((x @ wq.T).reshape(seq_len, n_heads, head_dim), theta)
    k_wrong = rotate_half_rope((x @ wk.T).reshape(seq_len, n_kv_heads, head_dim), theta)
    scores_wrong = np.einsum("thd,shd->hts", q_wrong, np.repeat(k_wrong, 2, axis=1))
    assert np.abs(scores_wrong - scores_meta).max() > 1e-3


def test_hf_folder_stores_permuted_rows_under_hf_names(tmp_path):
    model = model_for("gqa_untied")
    c = model.config
    tl.save_checkpoint(model, tmp_path, format="hf")
    stored = read_safetensors(tmp_path / "model.safetensors")
    wk = np.empty(stored["model.layers.2.self_attn.k_proj.weight"].shape, np.float32)
    stored["model.layers.2.self_attn.k_proj.weight"].copy_into(wk)
    np.testing.assert_array_equal(wk, hf_permute(model.params["layers.2.attention.wk.weight"],
                                                 c.n_kv_heads))
    assert "lm_head.weight" in stored and "model.layers.0.mlp.gate_proj.weight" in stored
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["num_key_value_heads"] == 2 and config["intermediate_size"] == c.hidden_dim
    assert config["architectures"] == ["LlamaForCausalLM"]


def test_sharded_hf_folder_built_by_hand(tmp_path):
    model = model_for("gqa_tied")
    tl.save_checkpoint(model, tmp_path / "single", format="hf", dtype="bfloat16")
    tensors = read_safetensors(tmp_path / "single" / "model.safetensors")
    raw = {name: bfloat16_to_float32(np.asarray(t.data)) for name, t in tensors.items()}
    names = sorted(raw)
    shards = {"model-00001-of-00002.safetensors": names[:7],
              "model-00002-of-00002.safetensors": names[7:]}
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    (sharded / "config.json").write_bytes((tmp_path / "single" / "config.json").read_bytes())
    for shard, shard_names in shards.items():
        write_safetensors(sharded / shard, {name: raw[name] for name in shard_names}, "BF16")
    index = {"metadata": {"total_size": 0},
             "weight_map": {name: shard for shard, ns in shards.items() for name in ns}}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    assert_same_params(tl.load_checkpoint(sharded), tl.load_checkpoint(tmp_path / "single"))
    # A shard that lost a tensor the index promises is an error.
    write_safetensors(sharded / "model-00002-of-00002.safetensors",
                      {name: raw[name] for name in names[8:]}, "BF16")
    with pytest.raises(ValueError, match="model-00002-of-00002.safetensors"):
        tl.load_checkpoint(sharded)


def test_hf_config_variants(tmp_path):
    model = model_for("gqa_untied")
    tl.save_checkpoint(model, tmp_path, format="hf")
    config = json.loads((tmp_path / "config.json").read_text())
    # Newer transformers: theta inside rope_parameters, no top-level rope_theta.
    del config["rope_theta"], config["rope_scaling"]
    config["rope_parameters"] = {"rope_type": "default", "rope_theta": 123456.0}
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert tl.load_checkpoint(tmp_path).config.rope_theta == 123456.0
    # Older configs: no num_key_value_heads (plain multi-head attention) and no
    # max_position_embeddings or rms_norm_eps (transformers' defaults 2048 and 1e-6).
    config = {key: value for key, value in config.items() if key not in (
        "num_key_value_heads", "max_position_embeddings", "rms_norm_eps")}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="k_proj.weight has shape"):
        tl.load_checkpoint(tmp_path)  # the weights are GQA: 2 kv heads, not 6
    config["num_key_value_heads"] = 2
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = tl.load_checkpoint(tmp_path).config
    assert (loaded.max_seq_len, loaded.norm_eps) == (2048, 1e-6)


def test_hf_tied_folder_with_a_redundant_lm_head(tmp_path):
    model = model_for("gqa_tied")
    tl.save_checkpoint(model, tmp_path, format="hf")
    tensors = {}
    for name, stored in read_safetensors(tmp_path / "model.safetensors").items():
        tensors[name] = np.array(stored.data)
    tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"]
    write_safetensors(tmp_path / "model.safetensors", tensors)
    assert_same_params(tl.load_checkpoint(tmp_path), model)


def test_hf_paths_inside_the_folder_load_the_folder(tmp_path):
    model = model_for("mha_untied")
    tl.save_checkpoint(model, tmp_path, format="hf")
    for path in (tmp_path, tmp_path / "config.json", tmp_path / "model.safetensors"):
        assert tl.checkpoint_format(path) == "hf"
        assert_same_params(tl.load_checkpoint(path), model)


def test_format_is_detected_from_content_not_name(tmp_path):
    model = model_for("mha_untied")
    tl.save_checkpoint(model, tmp_path / "really_npz.bin", format="npz")
    tl.save_checkpoint(model, tmp_path / "really_llama2c.npz", format="llama2c")
    assert tl.checkpoint_format(tmp_path / "really_npz.bin") == "npz"
    assert tl.checkpoint_format(tmp_path / "really_llama2c.npz") == "llama2c"
    assert_same_params(tl.load_checkpoint(tmp_path / "really_npz.bin"), model)
    assert_same_params(tl.load_checkpoint(tmp_path / "really_llama2c.npz"), model)


def test_saving_over_an_existing_file_is_atomic(tmp_path, monkeypatch):
    model = model_for("mha_untied")
    path = tmp_path / "m.npz"
    tl.save_checkpoint(model, path)
    before = path.read_bytes()
    # A failure in the middle of writing leaves the old file untouched and no temporary.
    import tinyllama_np.checkpoint.npz as npz_module

    def failing_write_array(*args, **kwargs):
        raise OSError("disk full (simulated)")
    monkeypatch.setattr(npz_module.np.lib.format, "write_array", failing_write_array)
    with pytest.raises(OSError, match="disk full"):
        tl.save_checkpoint(tl.Llama(model.config, seed=99), path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


# ------------------------------------------------------------------- the convert command

def test_convert_command_chain(tmp_path, run_cli):
    model = model_for("gqa_tied")
    tl.save_checkpoint(model, tmp_path / "a.npz")
    chain = [("a.npz", "b.bin", "llama2c"), ("b.bin", "c.bin", "llama2c-v1"),
             ("c.bin", "d_hf", "hf"), ("d_hf", "e.npz", "npz")]
    for source, target, form in chain:
        result = run_cli("convert", str(tmp_path / source), str(tmp_path / target),
                         "--format", form)
        assert result.returncode == 0, result.stderr
        assert "->" in result.stdout
    assert_same_params(tl.load_checkpoint(tmp_path / "e.npz"), model)


def test_convert_command_reports_bad_input_without_traceback(tmp_path, run_cli):
    (tmp_path / "junk.bin").write_bytes(b"\x01\x02\x03 not a checkpoint at all")
    result = run_cli("convert", str(tmp_path / "junk.bin"), str(tmp_path / "out.npz"),
                     "--format", "npz")
    assert result.returncode == 1
    assert "tinyllama-np convert: error:" in result.stderr and "junk.bin" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.npz").exists()
