"""GGUF: our hand-written reader and dequantisers against the `gguf` package (llama.cpp's)."""

import os
import struct

import numpy as np
import pytest

import tinyllama_np as tl
from tinyllama_np.checkpoint.gguf import read_gguf
from tinyllama_np.checkpoint.gguf_quants import TENSOR_TYPES, dequantize, quantize_q8_0

from gguf_files import write_gguf_model

pytestmark = pytest.mark.reference  # counted in the run's summary (conftest.py)
gguf = pytest.importorskip("gguf")

CONFIG = tl.LlamaConfig(vocab_size=40, dim=64, n_layers=2, n_heads=4, n_kv_heads=2,
                        hidden_dim=96, max_seq_len=32, rope_theta=5e5, norm_eps=1e-6)
# Where each block type keeps its float16 scales (and minimums): random bytes there could be
# inf or NaN, so the tests put ordinary numbers in them.
SCALE_BYTES = {"Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0],
               "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208]}


def test_type_table_matches_ggml():
    for type_id, (name, block_weights, block_bytes) in TENSOR_TYPES.items():
        kind = gguf.GGMLQuantizationType[name]
        assert kind.value == type_id
        assert gguf.GGML_QUANT_SIZES[kind] == (block_weights, block_bytes)


@pytest.mark.parametrize("name", sorted(SCALE_BYTES))
def test_dequantize_matches_gguf(name, rng):
    _, block_weights, block_bytes = next(t for t in TENSOR_TYPES.values() if t[0] == name)
    raw = rng.integers(0, 256, (37, block_bytes), dtype=np.uint8)  # every bit pattern of q
    for start in SCALE_BYTES[name]:
        raw[:, start:start + 2] = rng.uniform(-2, 2, (37, 1)).astype("<f2").view(np.uint8)
    expected = gguf.quants.dequantize(raw.reshape(-1), gguf.GGMLQuantizationType[name])
    np.testing.assert_array_equal(dequantize(raw.reshape(-1), name), expected.reshape(-1))


@pytest.mark.parametrize("name", ["F32", "F16", "BF16"])
def test_plain_types(name, rng):
    values = rng.standard_normal(64).astype(np.float32)
    kind = gguf.GGMLQuantizationType[name]
    raw = gguf.quants.quantize(values, kind) if name == "BF16" else values.astype(
        np.float16 if name == "F16" else np.float32)
    raw = np.ascontiguousarray(raw).view(np.uint8).reshape(-1)
    expected = gguf.quants.dequantize(raw, kind) if name == "BF16" else \
        raw.view("<f2" if name == "F16" else "<f4").astype(np.float32)
    np.testing.assert_array_equal(dequantize(raw, name), expected.reshape(-1))


def test_quantize_q8_0_matches_ggml(rng):
    values = rng.standard_normal((8, 64)).astype(np.float32)
    values[0] = 0  # an all-zero block: scale 0, no division by zero
    expected = gguf.quants.quantize(values, gguf.GGMLQuantizationType.Q8_0)
    np.testing.assert_array_equal(quantize_q8_0(values), expected.reshape(-1))


@pytest.fixture(scope="module")
def model():
    return tl.Llama(CONFIG, seed=7)


@pytest.mark.parametrize("quant", ["F32", "F16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"])
def test_model_file_written_by_gguf_loads(quant, model, tmp_path):
    path = tmp_path / "model.gguf"
    stored = write_gguf_model(gguf, model, path, quant)
    assert tl.checkpoint_format(path) == "gguf"
    loaded = tl.load_checkpoint(path)
    assert loaded.config == CONFIG
    for name, value in stored.items():
        np.testing.assert_array_equal(loaded.params[name], value, err_msg=name)
    if quant == "F32":
        tokens = np.array([[1, 5, 9, 3]])
        np.testing.assert_array_equal(loaded.forward(tokens), model.forward(tokens))


def test_tied_when_there_is_no_output_weight(model, tmp_path):
    tensors = {n: v for n, v in model.params.items() if n != "output.weight"}
    write_gguf_model(gguf, model, tmp_path / "tied.gguf", tensors=tensors)
    loaded = tl.load_checkpoint(tmp_path / "tied.gguf")
    assert loaded.config.tie_embeddings
    assert "output.weight" not in loaded.params


def test_every_metadata_type_alignment_and_version_2(model, tmp_path):
    extra = {"test.u8": ("uint8", 200), "test.i8": ("int8", -100), "test.u16": ("uint16", 60000),
             "test.i16": ("int16", -30000), "test.u32": ("uint32", 4_000_000_000),
             "test.i32": ("int32", -2_000_000_000), "test.f32": ("float32", 1.5),
             "test.u64": ("uint64", 1 << 60), "test.i64": ("int64", -(1 << 60)),
             "test.f64": ("float64", 0.1), "test.bool": ("bool", True),
             "test.string": ("string", "你好 GGUF"),
             "test.ints": ("array", [1, 2, 3]), "test.strings": ("array", ["a", "", "ü"]),
             "test.nested": ("array", [[1, 2], [3]])}
    path = tmp_path / "meta.gguf"
    write_gguf_model(gguf, model, path, extra=extra, alignment=64)
    metadata, tensors, _ = read_gguf(path)
    for key, (_, value) in extra.items():
        got = metadata[key]
        if key == "test.nested":
            got = [list(inner) for inner in got]
        elif isinstance(got, np.ndarray):
            got = got.tolist()
        assert got == pytest.approx(value) if key.endswith(("f32", "f64")) else got == value, key
    assert metadata["general.alignment"] == 64
    assert all(begin % 64 == 0 for _, _, begin in tensors.values())
    reference = gguf.GGUFReader(path)
    assert {t.name for t in reference.tensors} == set(tensors)
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 4, 2)  # version 2 has the same layout as 3
    (tmp_path / "v2.gguf").write_bytes(bytes(data))
    assert tl.load_checkpoint(tmp_path / "v2.gguf").config == CONFIG


def test_rope_freqs_tensor_becomes_frequency_divisors(model, tmp_path):
    factors = np.linspace(1, 8, CONFIG.head_dim // 2).astype(np.float32)
    path = tmp_path / "rope.gguf"
    write_gguf_model(gguf, model, path, tensors={**model.params, "rope_freqs": factors})
    loaded = tl.load_checkpoint(path)
    assert loaded.config.rope_scaling == {"rope_type": "freq_factors",
                                          "factors": factors.tolist()}
    base = tl.rope_rotations(CONFIG.head_dim, 4, CONFIG.rope_theta)
    scaled = tl.rope_rotations(CONFIG.head_dim, 4, CONFIG.rope_theta, loaded.config.rope_scaling)
    np.testing.assert_allclose(np.angle(scaled[1]), np.angle(base[1]) / factors, rtol=1e-6)


SMOLLM2 = os.environ.get("TINYLLAMA_NP_SMOLLM2")
needs_smollm2 = pytest.mark.skipif(not SMOLLM2 or not os.path.isfile(SMOLLM2),
                                   reason="set TINYLLAMA_NP_SMOLLM2 to SmolLM2-135M-Instruct's "
                                          "GGUF file (see lessons/16_real_model.py)")


@needs_smollm2
def test_smollm2_weights_match_gguf_and_rows_are_in_meta_order():
    model = tl.load_checkpoint(SMOLLM2)
    c = model.config
    assert (c.n_layers, c.dim, c.n_heads, c.n_kv_heads, c.hidden_dim, c.vocab_size) == \
        (30, 576, 9, 3, 1536, 49152)
    assert c.tie_embeddings and c.rope_theta == 1e5
    reader = gguf.GGUFReader(SMOLLM2)
    by_name = {t.name: t for t in reader.tensors}
    for ours, theirs in [("tok_embeddings.weight", "token_embd.weight"),
                         ("layers.7.attention.wk.weight", "blk.7.attn_k.weight"),
                         ("layers.29.feed_forward.w2.weight", "blk.29.ffn_down.weight")]:
        expected = gguf.quants.dequantize(by_name[theirs].data, by_name[theirs].tensor_type)
        np.testing.assert_array_equal(model.params[ours], expected)
    # The q/k rows: GGUF holds Meta's order. The model predicts a plain English sentence far
    # better as loaded than with Hugging Face's rotate-half order imposed on q and k.
    tokenizer = tl.load_tokenizer(SMOLLM2)
    ids = np.array([tokenizer.encode("The capital of France is Paris. The capital of "
                                     "Germany is Berlin. The capital of Italy is Rome.")])
    losses = {}
    for label in ("as stored", "hf order"):
        if label == "hf order":
            q = tl.checkpoint.rope_row_order(c.n_heads, c.head_dim)
            k = tl.checkpoint.rope_row_order(c.n_kv_heads, c.head_dim)
            for i in range(c.n_layers):
                for name, order in (("wq", q), ("wk", k)):
                    weight = model.params[f"layers.{i}.attention.{name}.weight"]
                    weight[:] = weight[order]
        logits = model.forward(ids[:, :-1])
        losses[label] = float(model.loss_fn.forward(logits, ids[:, 1:]))
    print(losses)
    assert losses["as stored"] + 0.5 < losses["hf order"]  # measured: 1.32 vs 2.18


def test_bad_gguf_files_give_clear_errors(model, tmp_path):
    path = tmp_path / "good.gguf"
    write_gguf_model(gguf, model, path, "Q8_0")
    good = path.read_bytes()

    def damaged(name, data, match):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=match) as info:
            tl.load_checkpoint(tmp_path / name)
        assert name in str(info.value)

    damaged("magic.gguf", b"GGUF" + b"\x01\x00\x00\x00" + good[8:], "version 1")
    damaged("counts.gguf", good[:8] + struct.pack("<Q", 1 << 50) + good[16:], "claims")
    damaged("string.gguf", good[:24] + struct.pack("<Q", 1 << 60) + good[32:], "truncated")
    damaged("short.gguf", good[:len(good) // 2], "outside the file|truncated")
    key_length = struct.unpack_from("<Q", good, 24)[0]  # the first metadata key
    type_at = 24 + 8 + key_length
    damaged("type.gguf", good[:type_at] + struct.pack("<I", 99) + good[type_at + 4:],
            "unknown value type 99")
    writer_path = tmp_path / "meta.gguf"
    write_gguf_model(gguf, model, writer_path, extra={"llama.block_count": ("uint32", 3)})
    with pytest.raises(ValueError, match="missing|layers need"):
        tl.load_checkpoint(writer_path)
    write_gguf_model(gguf, model, writer_path, extra={"llama.attention.head_count": ("uint32", 8)})
    with pytest.raises(ValueError, match="differs from embedding_length / head_count"):
        tl.load_checkpoint(writer_path)
    write_gguf_model(gguf, model, writer_path, extra={"llama.feed_forward_length": ("uint32", 80)})
    with pytest.raises(ValueError, match="has shape"):
        tl.load_checkpoint(writer_path)
    write_gguf_model(gguf, model, writer_path, extra={"llama.rope.scaling.type": ("string", "yarn")})
    with pytest.raises(ValueError, match="'yarn' is not implemented"):
        tl.load_checkpoint(writer_path)
    write_gguf_model(gguf, model, writer_path, extra={
        "tokenizer.ggml.model": ("string", "gpt2"), "tokenizer.ggml.pre": ("string", "qwen2"),
        "tokenizer.ggml.tokens": ("array", ["a", "b"])})
    with pytest.raises(ValueError, match="'qwen2' is not one we know"):
        tl.load_tokenizer(writer_path)
    write_gguf_model(gguf, model, writer_path, extra={
        "tokenizer.ggml.model": ("string", "bert"), "tokenizer.ggml.tokens": ("array", ["a"])})
    with pytest.raises(ValueError, match="'bert' is not supported"):
        tl.load_tokenizer(writer_path)
    with pytest.raises(ValueError, match="holds no tokenizer"):
        tl.load_tokenizer(path)
    q2_k = gguf.GGMLQuantizationType.Q2_K
    writer = gguf.GGUFWriter(str(tmp_path / "q2k.gguf"), "llama")
    writer.add_tensor("token_embd.weight", np.zeros((4, 84), np.uint8), raw_dtype=q2_k)
    writer.write_header_to_file(), writer.write_kv_data_to_file()
    writer.write_tensors_to_file(), writer.close()
    with pytest.raises(ValueError, match="type 10, which we do not read"):
        tl.load_checkpoint(tmp_path / "q2k.gguf")
    writer = gguf.GGUFWriter(str(tmp_path / "arch2.gguf"), "mistral")
    writer.add_tensor("token_embd.weight", np.zeros((4, 32), np.float32))
    writer.write_header_to_file(), writer.write_kv_data_to_file()
    writer.write_tensors_to_file(), writer.close()
    with pytest.raises(ValueError, match="'mistral': we load LLaMA models only"):
        tl.load_checkpoint(tmp_path / "arch2.gguf")


@needs_smollm2
def test_smollm2_logits_match_transformers_loading_the_same_gguf():
    """transformers reads GGUF files itself (its own dequantisation via gguf, its own q/k
    row permutation into Hugging Face's order, its own tokenizer conversion and chat
    template): the same prompt ids, the same logits up to float32 rounding."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    folder, name = os.path.split(SMOLLM2)
    reference = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name,
                                                                  dtype=torch.float32)
    reference_tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model, tokenizer = tl.load_checkpoint(SMOLLM2), tl.load_tokenizer(SMOLLM2)
    messages = [{"role": "user", "content": "What is the capital of Italy? 你好 😀 12345"}]
    ids = tl.chat_prompt(messages, tokenizer)
    expected_ids = reference_tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                           tokenize=True)
    if hasattr(expected_ids, "keys"):
        expected_ids = expected_ids["input_ids"]
    assert ids == list(expected_ids)
    with torch.no_grad():
        expected = reference(torch.tensor([ids])).logits.numpy()
    logits = model.forward(np.array([ids]))
    assert np.abs(logits - expected).max() < 1e-3 * np.abs(expected).max()
    assert (logits[0].argmax(-1) == expected[0].argmax(-1)).mean() > 0.95
