"""`tinyllama-np bench --profile` prints a table whose rows are the whole step (no speed is asserted)."""

import re

import numpy as np

import tinyllama_np as tl
from tinyllama_np.bench.profile import ROWS, Profiler, profile_step
from tinyllama_np.cli import main


def test_profile_table_rows_add_up_to_the_step(capsys):
    config = tl.LlamaConfig(vocab_size=64, dim=16, n_layers=2, n_heads=2, max_seq_len=16)
    seconds = profile_step(config, batch=2, seq_len=16, steps=2)
    out = capsys.readouterr().out
    for label in ("Linear", "RMSNorm", "attention: softmax", "SwiGLU gating", "cross-entropy",
                  "RoPE", "residual adds"):
        assert label in out
    shares = [float(share) for share in re.findall(r"(\d+\.\d)%", out)]
    assert abs(sum(shares) - 100) < 1.0, shares
    assert set(seconds) == {label for _, label in ROWS}


def test_profiler_counts_the_flops_of_linear_layers_and_restores_the_classes():
    forward_before = tl.Linear.forward
    linear = tl.Linear(np.ones((5, 3)))
    with Profiler() as profiler:
        linear.forward(np.ones((4, 3)))
        linear.backward(np.ones((4, 5)))
    label = dict((cls, label) for cls, label in ROWS)[tl.Linear]
    assert profiler.flops[label, "forward"] == 2 * 4 * 3 * 5
    assert profiler.flops[label, "backward"] == 4 * 4 * 3 * 5
    assert tl.Linear.forward is forward_before


def test_bench_profile_command(capsys, monkeypatch):
    from tinyllama_np.bench import steps
    monkeypatch.setitem(steps.BENCH_CONFIGS, "small", (tl.LlamaConfig(
        vocab_size=64, dim=16, n_layers=1, n_heads=2, max_seq_len=16), 2, 16))
    assert main(["bench", "--profile", "--configs", "small", "--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "[small] profile of one training step" in out and "GFLOP/s" in out
