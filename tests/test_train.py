"""The training loop: it learns, resumes bit for bit, stops cleanly on a diverged loss."""

import json

import numpy as np
import pytest

from tinyllama_np.training import data as data_module
from tinyllama_np.nn import CrossEntropyLoss
from tinyllama_np.training.loop import STATE_FILE, TrainingError, TrainSettings, load_state, read_log, train


def counting_tokens(n, vocab_size=20, seed=0):
    """A learnable stream: runs counting up modulo vocab_size from random starts."""
    rng = np.random.default_rng(seed)
    runs = [(rng.integers(vocab_size) + np.arange(12)) % vocab_size for _ in range(n // 12)]
    return np.concatenate(runs).astype(np.uint16)


def small_settings(**overrides):
    values = dict(dim=16, n_layers=2, n_heads=2, hidden_dim=32, seq_len=12, batch_size=4, steps=8,
                  lr=1e-2, min_lr=1e-3, warmup_steps=2, eval_interval=4, eval_batches=2,
                  checkpoint_interval=3)
    values.update(overrides)
    return TrainSettings(**values)


def run(tmp_path, name, settings, **kwargs):
    return train(settings, counting_tokens(3000), counting_tokens(600, seed=1), 20, tmp_path / name,
                 progress=False, log=lambda *a: None, **kwargs)


def test_loss_falls(tmp_path):
    run(tmp_path, "a", small_settings(steps=60, eval_interval=20))
    log = read_log(tmp_path / "a")
    assert [r["step"] for r in log] == list(range(1, 61))
    first, last = np.mean([r["loss"] for r in log[:5]]), np.mean([r["loss"] for r in log[-5:]])
    assert last < first - 1.0
    assert [r["step"] for r in log if "val_loss" in r] == [20, 40, 60]


@pytest.mark.parametrize("grad_accum, workers", [(1, 1), (2, 1), (2, 2)])
def test_stop_and_resume_is_bit_identical(tmp_path, grad_accum, workers):
    settings = small_settings(grad_accum=grad_accum)
    straight = run(tmp_path, "straight", settings, workers=workers)
    run(tmp_path, "resumed", settings, stop_at=5, workers=workers)
    assert load_state(tmp_path / "resumed")[1]["step"] == 5
    resumed = run(tmp_path, "resumed", settings, resume=True, workers=workers)
    for name, value in straight.params.items():
        np.testing.assert_array_equal(resumed.params[name], value, err_msg=name)
    a, _ = load_state(tmp_path / "straight")
    b, _ = load_state(tmp_path / "resumed")
    assert set(a) == set(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert [r["step"] for r in read_log(tmp_path / "resumed")] == list(range(1, 9))


def test_resume_forgets_log_lines_after_the_checkpoint(tmp_path):
    settings = small_settings()
    run(tmp_path, "r", settings, stop_at=5)
    with open(tmp_path / "r" / "log.jsonl", "a") as file:  # as if it crashed after step 6
        file.write(json.dumps({"step": 6, "loss": 1.0}) + "\n")
    run(tmp_path, "r", settings, resume=True)
    assert [r["step"] for r in read_log(tmp_path / "r")] == list(range(1, 9))


def test_resume_refuses_a_different_config(tmp_path):
    run(tmp_path, "r", small_settings(), stop_at=3)
    with pytest.raises(TrainingError, match="different model configuration"):
        run(tmp_path, "r", small_settings(dim=24), resume=True)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    run(tmp_path, "n", small_settings(eval_interval=100), stop_at=3)
    before = (tmp_path / "n" / STATE_FILE).read_bytes()
    original = CrossEntropyLoss.forward
    calls = []

    def poisoned(self, logits, targets, **options):
        calls.append(1)
        loss = original(self, logits, targets, **options)
        return float("nan") if len(calls) == 2 else loss

    monkeypatch.setattr(CrossEntropyLoss, "forward", poisoned)
    with pytest.raises(TrainingError, match=r"loss became nan at step 5.*last good checkpoint \(step 3\)"):
        run(tmp_path, "n", small_settings(eval_interval=100), resume=True)
    assert (tmp_path / "n" / STATE_FILE).read_bytes() == before


def test_frozen_layers_do_not_change(tmp_path):
    model = run(tmp_path, "f", small_settings(steps=3, freeze=["tok_embeddings", "layers.0."]))
    fresh = run(tmp_path, "g", small_settings(steps=0 + 1, freeze=["tok_embeddings", "layers.0."]), stop_at=0)
    for name in model.params:
        same = np.array_equal(model.params[name], fresh.params[name])
        assert same == name.startswith(("tok_embeddings", "layers.0.")), name
    # Frozen weights have no gradient buffer at all (Module.freeze), only the others do.
    assert set(model.grads) == {n for n in model.params if not n.startswith(("tok_embeddings", "layers.0."))}


def test_bad_settings_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="steps must be at least 1"):
        run(tmp_path, "x", small_settings(steps=0))
    with pytest.raises(ValueError, match="matches no parameter"):
        run(tmp_path, "x", small_settings(freeze=["layer.0"]))
    with pytest.raises(ValueError, match="fewer than one sequence"):
        train(small_settings(), counting_tokens(24)[:10], counting_tokens(600), 20, tmp_path / "y",
              progress=False)


def test_random_batch_targets_are_shifted_inputs():
    tokens = np.arange(100, dtype=np.uint16)
    x, y = data_module.random_batch(tokens, 3, 7, np.random.default_rng(0))
    assert x.shape == y.shape == (3, 7)
    np.testing.assert_array_equal(y, x + 1)


def documents_of_lengths(lengths, bos=999):
    """BOS, then 100 * d + 1, 100 * d + 2, ... for document d: every token names its document."""
    return np.concatenate([[bos] + [100 * d + j for j in range(1, n)] for d, n in enumerate(lengths)]
                          ).astype(np.uint16)


def test_windows_start_at_documents_that_fit():
    tokens = documents_of_lengths([5, 30, 6, 4, 9])
    doc_bounds = data_module.document_bounds(tokens, 999)
    np.testing.assert_array_equal(doc_bounds, [0, 5, 35, 41, 45, 54])
    x, y = data_module.random_batch(tokens, 2000, 8, np.random.default_rng(0), doc_bounds)
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    long_doc = x[:, 0] != 999
    # A window starts at a BOS, unless it lies wholly inside the 30-token document.
    assert np.all(x[long_doc] // 100 == 1) and np.all(y[long_doc] // 100 == 1)
    # Four of the five documents fit, so about four windows in five start at a BOS, and the
    # long document's windows start at every offset that keeps them inside it.
    assert 0.7 < np.mean(~long_doc) < 0.9
    assert set(x[long_doc, 0] % 100) == set(range(1, 30 - 8))
    uniform, _ = data_module.random_batch(tokens, 2000, 8, np.random.default_rng(0))
    assert np.mean(uniform[:, 0] == 999) < 0.2  # without the documents, anywhere


def test_windows_near_the_end_and_text_before_the_first_bos():
    tokens = np.concatenate([[7, 7], documents_of_lengths([4, 3])]).astype(np.uint16)
    doc_bounds = data_module.document_bounds(tokens, 999)
    np.testing.assert_array_equal(doc_bounds, [0, 2, 6, 9])
    x, _ = data_module.random_batch(tokens, 50, 5, np.random.default_rng(0), doc_bounds)
    # The corpus has 9 tokens: a 6-token window cannot start later than position 3.
    assert set(x[:, 0]) == {7, 999, 1}
