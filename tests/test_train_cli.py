"""`tinyllama-np train` end to end on the bundled corpus (a few steps), and its bad input."""

import json

import numpy as np

import tinyllama_np as tl

QUICK = ["--steps", "4", "--batch-size", "2", "--seq-len", "32", "--dim", "32", "--n-layers", "1",
         "--n-heads", "2", "--eval-interval", "2", "--checkpoint-interval", "2"]


def test_train_writes_a_complete_run_folder_and_generate_reads_it(tmp_path, run_cli):
    out = tmp_path / "run"
    result = run_cli("train", "--out", str(out), "--samples", "3", "--show", "2", *QUICK)
    assert result.returncode == 0, result.stderr
    for name in ["model.npz", "train_state.npz", "log.jsonl", "tokenizer.model", "samples.txt",
                 "samples.json", "run.json"]:
        assert (out / name).is_file(), name
    assert "grammar accepts" in result.stdout and "[2]" in result.stdout
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4] and "val_loss" in log[1]
    model = tl.load_checkpoint(out)
    assert model.config.dim == 32 and model.config.vocab_size == 2048
    generated = run_cli("generate", "--checkpoint", str(out), "--prompt", "Once", "--max-new-tokens",
                        "5", "--seed", "0")
    assert generated.returncode == 0, generated.stderr
    assert generated.stdout.startswith("Once")


def test_resume_from_the_command_line_is_exact(tmp_path, run_cli):
    """With two data-parallel workers, as `--workers 2` asks (each run, and the resume)."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    two = ["--workers", "2"]
    first = run_cli("train", "--out", str(straight), "--samples", "0", *two, *QUICK)
    assert first.returncode == 0 and "2 workers (data parallel" in first.stdout
    assert run_cli("train", "--out", str(resumed), "--samples", "0", "--stop-at", "2", *two,
                   *QUICK).returncode == 0
    result = run_cli("train", "--resume", str(resumed), "--samples", "0", *two)
    assert result.returncode == 0, result.stderr
    a, b = np.load(straight / "model.npz"), np.load(resumed / "model.npz")
    assert a.files == b.files
    for name in a.files:
        np.testing.assert_array_equal(a[name], b[name])


def test_bad_input_is_a_message_not_a_traceback(tmp_path, run_cli):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    short = tmp_path / "short.txt"
    short.write_text("One tiny story.\n\nAnother one.\n")
    cases = [
        (["train", "--data", str(tmp_path / "missing.txt")], "does not exist"),
        (["train", "--data", str(empty)], "is empty"),
        (["train", "--data", str(short), "--vocab-size", "300", "--out", str(tmp_path / "s")],
         "fewer than one sequence"),
        (["train", "--preset", "huge"], "invalid choice"),
        (["train", "--steps", "0", "--out", str(tmp_path / "z")], "steps must be at least 1"),
        (["train", "--workers", "0", "--out", str(tmp_path / "w")], "--workers must be at least 1"),
        (["train", "--resume", str(tmp_path / "nothing")], "holds no training checkpoint"),
    ]
    for args, message in cases:
        result = run_cli(*args)
        assert result.returncode != 0, args
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr, args
    assert not (tmp_path / "w").exists()  # refused before anything was written


def test_an_existing_run_is_never_overwritten(tmp_path, run_cli):
    out = tmp_path / "run"
    assert run_cli("train", "--out", str(out), "--samples", "0", *QUICK).returncode == 0
    before = (out / "train_state.npz").read_bytes()
    result = run_cli("train", "--out", str(out), *QUICK)
    assert result.returncode != 0 and "already holds a training run" in result.stderr
    assert (out / "train_state.npz").read_bytes() == before


def test_a_corpus_that_is_not_the_stories_gives_samples_not_scored_stories(tmp_path, run_cli):
    text = tmp_path / "verses.txt"
    text.write_text("\n\n".join(f"To be, or not to be, verse {i}: that is the question." * 3
                                for i in range(40)), encoding="utf-8")
    out = tmp_path / "run"
    result = run_cli("train", "--data", str(text), "--vocab-size", "300", "--out", str(out),
                     "--samples", "2", "--show", "1", *QUICK)
    assert result.returncode == 0, result.stderr
    assert "samples written by the model" in result.stdout
    assert "stories" not in result.stdout and "grammar" not in result.stdout
    assert (out / "samples.txt").is_file() and not (out / "samples.json").exists()
