"""Our GGUF writer: read back by us and by the `gguf` package (llama.cpp's reader)."""

import os

import numpy as np
import pytest

import tinyllama_np as tl
from tinyllama_np.checkpoint.gguf_write import merges_from_ranks
from tinyllama_np.tokenizer.llama2c import Llama2cTokenizer

from test_tokenizer_llama2c import tokenizer_bin_bytes

pytestmark = pytest.mark.reference  # counted in the run's summary (conftest.py)
gguf = pytest.importorskip("gguf")

CONFIG = tl.LlamaConfig(vocab_size=2048, dim=64, n_layers=2, n_heads=4, n_kv_heads=2,
                        hidden_dim=96, max_seq_len=32, rope_theta=5e5, norm_eps=1e-6)
TEXTS = ["Once upon a time, Lily said \"hello\" to 123 friends.", "从前有一个小女孩。",
         "  spaces\n\nand lines  ", "<|end_of_text|> is text unless allowed"]


@pytest.fixture(scope="module")
def model():
    return tl.Llama(CONFIG, seed=5)


def gguf_weights(path):
    """Our name -> the weights as the gguf package dequantises them."""
    from gguf_files import gguf_name
    by_name = {t.name: t for t in gguf.GGUFReader(path).tensors}
    weights = {}
    for ours in tl.Llama(CONFIG, random_init=False).params:
        tensor = by_name[gguf_name(ours)]
        weights[ours] = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(
            tuple(reversed(tensor.shape.tolist())))
    return weights


@pytest.mark.parametrize("dtype", ["f32", "f16", "q8_0"])
def test_round_trip_and_gguf_reads_our_file(dtype, model, tmp_path):
    path = tmp_path / "m.gguf"
    tl.save_checkpoint(model, path, format="gguf", dtype=dtype)
    loaded = tl.load_checkpoint(path)
    assert loaded.config == CONFIG
    theirs = gguf_weights(path)
    for name, value in model.params.items():
        np.testing.assert_array_equal(loaded.params[name], theirs[name], err_msg=name)
        if dtype == "f32" or value.ndim == 1:
            expected = value
        elif dtype == "f16":
            expected = value.astype(np.float16).astype(np.float32)
        else:  # the reference quantiser, then the reference dequantiser
            kind = gguf.GGMLQuantizationType.Q8_0
            expected = gguf.quants.dequantize(gguf.quants.quantize(value, kind), kind)
        np.testing.assert_array_equal(loaded.params[name], expected, err_msg=name)
    fields = gguf.GGUFReader(path).fields
    assert fields["general.architecture"].contents() == "llama"
    assert fields["llama.attention.head_count_kv"].contents() == CONFIG.n_kv_heads


def test_our_bpe_tokenizer_round_trips_as_a_gpt2_vocabulary(model, tmp_path):
    tokenizer = tl.load_tokenizer("data/tokenizer.model")
    path = tmp_path / "with_tokenizer.gguf"
    tl.save_checkpoint(model, path, format="gguf", tokenizer=tokenizer)
    back = tl.load_tokenizer(path)
    assert back.vocab_size == tokenizer.vocab_size
    assert back.bos_id == tokenizer.bos_id and back.eos_id == tokenizer.eos_id
    for text in TEXTS:
        assert back.encode(text) == tokenizer.encode(text), text
        assert back.encode(text, allowed_special="all") == \
            tokenizer.encode(text, allowed_special="all"), text
        assert back.decode(tokenizer.encode(text)) == text
    fields = gguf.GGUFReader(path).fields
    assert fields["tokenizer.ggml.model"].contents() == "gpt2"
    assert len(fields["tokenizer.ggml.merges"].contents()) == tokenizer.vocab_size - 256 - 2
    # The vocab + merges tokenizer read back can itself be written again (GGUF -> GGUF).
    tl.save_checkpoint(model, tmp_path / "again.gguf", format="gguf", tokenizer=back)
    again = tl.load_tokenizer(tmp_path / "again.gguf")
    for text in TEXTS:
        assert again.encode(text, allowed_special="all") == \
            tokenizer.encode(text, allowed_special="all"), text


def test_llama2c_tokenizer_round_trips_as_a_llama_vocabulary(tmp_path):
    (tmp_path / "tokenizer.bin").write_bytes(tokenizer_bin_bytes())
    tokenizer = Llama2cTokenizer.load(tmp_path / "tokenizer.bin")
    config = tl.LlamaConfig(vocab_size=tokenizer.vocab_size, dim=32, n_layers=1, n_heads=2)
    path = tmp_path / "m.gguf"
    tl.save_checkpoint(tl.Llama(config), path, format="gguf", tokenizer=tokenizer)
    back = tl.load_tokenizer(path)
    assert back.pieces == tokenizer.pieces
    np.testing.assert_array_equal(np.float32(back.scores), np.float32(tokenizer.scores))
    for text in ["hello world", "abc", "ünïcödé 😀"]:
        assert back.encode(text) == tokenizer.encode(text)


def test_merges_from_ranks_rebuild_the_training_merges():
    ranks = {bytes([b]): b for b in range(256)}
    for piece in (b"th", b"the", b" t", b" the"):
        ranks[piece] = len(ranks)
    assert merges_from_ranks(ranks) == [[b"t", b"h"], [b"th", b"e"], [b" ", b"t"],
                                        [b" t", b"he"]] or \
        merges_from_ranks(ranks)[3] in ([b" t", b"he"], [b" th", b"e"], [b" ", b"the"])


def test_llama3_scaling_is_written_as_rope_freqs(tmp_path):
    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 8}
    config = tl.LlamaConfig(vocab_size=16, dim=32, n_layers=1, n_heads=2, max_seq_len=64,
                            rope_scaling=scaling)
    model = tl.Llama(config, seed=1)
    tl.save_checkpoint(model, tmp_path / "r.gguf", format="gguf")
    loaded = tl.load_checkpoint(tmp_path / "r.gguf")
    assert loaded.config.rope_scaling["rope_type"] == "freq_factors"
    np.testing.assert_allclose(
        tl.rope_rotations(16, 64, config.rope_theta, loaded.config.rope_scaling),
        tl.rope_rotations(16, 64, config.rope_theta, scaling), rtol=1e-5, atol=1e-5)
    tokens = np.array([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]])
    np.testing.assert_allclose(loaded.forward(tokens), model.forward(tokens), atol=1e-4)


def test_bad_arguments(model, tmp_path):
    with pytest.raises(ValueError, match="f32, f16, q8_0"):
        tl.save_checkpoint(model, tmp_path / "x.gguf", format="gguf", dtype="q4_0")
    with pytest.raises(ValueError, match="does not store a tokenizer"):
        tl.save_checkpoint(model, tmp_path / "x.npz", tokenizer=object())
    assert not (tmp_path / "x.gguf").exists()


def test_convert_command_writes_gguf(model, tmp_path, run_cli):
    tl.save_checkpoint(model, tmp_path / "m.npz")
    result = run_cli("convert", str(tmp_path / "m.npz"), str(tmp_path / "m.gguf"),
                     "--format", "gguf", "--dtype", "q8_0",
                     "--tokenizer", "data/tokenizer.model")
    assert result.returncode == 0, result.stderr
    assert tl.load_checkpoint(tmp_path / "m.gguf").config == CONFIG
    assert tl.load_tokenizer(tmp_path / "m.gguf").vocab_size == 2048


SMOLLM2 = os.environ.get("TINYLLAMA_NP_SMOLLM2")


@pytest.mark.skipif(not SMOLLM2 or not os.path.isfile(SMOLLM2),
                    reason="set TINYLLAMA_NP_SMOLLM2 to SmolLM2-135M-Instruct's GGUF file")
def test_smollm2_converted_to_q8_0_keeps_its_tokenizer_and_answer(tmp_path, run_cli):
    result = run_cli("convert", SMOLLM2, str(tmp_path / "q8.gguf"), "--format", "gguf",
                     "--dtype", "q8_0")
    assert result.returncode == 0, result.stderr
    reader = gguf.GGUFReader(tmp_path / "q8.gguf")
    assert reader.fields["tokenizer.ggml.pre"].contents() == "smollm"
    assert "<|im_start|>" in reader.fields["tokenizer.chat_template"].contents()
    model, tokenizer = tl.load_checkpoint(tmp_path / "q8.gguf"), tl.load_tokenizer(
        tmp_path / "q8.gguf")
    ids = tl.chat_prompt([{"role": "user", "content": "What is the capital of France?"}],
                         tokenizer)
    assert ids == tl.chat_prompt([{"role": "user", "content": "What is the capital of "
                                   "France?"}], tl.load_tokenizer(SMOLLM2))
    answer = tl.generate(model, ids, 10, temperature=0, eos_id=tokenizer.eos_id)
    assert "Paris" in tokenizer.decode(answer)
