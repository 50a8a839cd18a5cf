"""`tinyllama-np bench --suite decode` runs and reports what it should (no speed is asserted)."""

import pytest

from tinyllama_np.bench import decode as bench_decode
from tinyllama_np.cli import main


def test_bench_decode_reports_rates_and_speed_up(monkeypatch, capsys):
    monkeypatch.setattr(bench_decode, "NEW_TOKENS", 4)
    monkeypatch.setattr(bench_decode, "OVERHEAD_CONFIG", bench_decode.LlamaConfig(
        vocab_size=32, dim=16, n_layers=3, n_heads=2, max_seq_len=32))
    assert main(["bench", "--suite", "decode", "--configs", "small", "--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "thread settings" in out
    for label in ["greedy, KV cache", "top-p 0.9, KV cache", "greedy, no cache",
                  "KV cache speed-up", "ratio tinyllama_np / reference", "matrix products alone",
                  "memory-bandwidth bound",
                  "prefill", "per-token Python overhead"]:
        assert label in out
    assert "dim288" not in out  # only the configuration asked for


def test_weight_bytes_per_token_counts_what_a_step_reads():
    config = bench_decode.DECODE_CONFIGS["small"]
    untied = bench_decode.Llama(config)
    all_bytes = sum(p.nbytes for p in untied.params.values())
    row_bytes = untied.params["tok_embeddings.weight"][0].nbytes
    # One embedding row is looked up; the other vocab_size - 1 rows are not read.
    assert (bench_decode.weight_bytes_per_token(untied)
            == all_bytes - (config.vocab_size - 1) * row_bytes)
    # Tied: the same matrix is the output projection, read whole.
    tied_config = bench_decode.LlamaConfig(**{**config.to_dict(), "tie_embeddings": True})
    tied = bench_decode.Llama(tied_config)
    assert bench_decode.weight_bytes_per_token(tied) == sum(p.nbytes for p in tied.params.values())


def test_bench_decode_on_a_checkpoint(monkeypatch, capsys, tmp_path):
    import tinyllama_np as tl
    model = tl.Llama(bench_decode.DECODE_CONFIGS["small"], seed=0)
    tl.save_checkpoint(model, tmp_path / "m.npz")
    monkeypatch.setattr(bench_decode, "measure_copy_bandwidth", lambda: 1e10)
    assert main(["bench", "--suite", "decode", "--checkpoint", str(tmp_path / "m.npz"),
                 "--steps", "1", "--no-torch"]) == 0
    out = capsys.readouterr().out
    for label in ["MB of weights read per token", "bound", "tokens/s", "time to first token",
                  "no reference run"]:
        assert label in out
    assert main(["bench", "--suite", "model", "--checkpoint", str(tmp_path / "m.npz")]) == 1


@pytest.mark.reference
def test_bench_decode_on_a_checkpoint_against_transformers(monkeypatch, capsys, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import tinyllama_np as tl
    model = tl.Llama(bench_decode.DECODE_CONFIGS["small"], seed=0)
    tl.save_checkpoint(model, tmp_path / "m.npz")
    monkeypatch.setattr(bench_decode, "measure_copy_bandwidth", lambda: 1e10)
    assert main(["bench", "--suite", "decode", "--checkpoint", str(tmp_path / "m.npz"),
                 "--steps", "1"]) == 0
    assert "ratio ours/theirs" in capsys.readouterr().out


def test_reference_decoder_chooses_the_same_tokens_as_generate():
    import numpy as np

    import tinyllama_np as tl
    config = tl.LlamaConfig(vocab_size=50, dim=24, n_layers=3, n_heads=6, n_kv_heads=2,
                            max_seq_len=32)
    model = tl.Llama(config, seed=3, dtype=np.float32)
    for param in model.params.values():  # larger weights: a decisive argmax, not near-ties
        param *= 20 if param.ndim == 2 else 1
    prompt = [3, 14, 15, 9]
    expected = tl.generate(model, prompt, 12, temperature=0)
    assert bench_decode.ReferenceDecoder(model).generate(prompt, 12) == list(expected)
