"""Progress output: plain lines, not a redrawn bar, when standard error is not a terminal."""

import io

from tinyllama_np import progress
from tinyllama_np.progress import PlainProgress, progress_bar


def test_plain_lines_every_interval_and_at_the_end(monkeypatch):
    clock = iter(range(0, 1000, 2))  # each call to the clock is 2 s later
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    out = io.StringIO()
    bar = PlainProgress(total=10, unit="steps", interval=5.0, file=out)
    for step in range(10):
        bar.set_postfix(loss=f"{1.0 / (step + 1):.3f}")
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert 2 <= len(lines) <= 5, lines  # not one line per step
    assert lines[-1].startswith("10/10 steps (100%)") and "loss 0.100" in lines[-1]


def test_a_terminal_gets_tqdm_and_anything_else_plain_lines(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True
    monkeypatch.setattr(progress.sys, "stderr", io.StringIO())
    assert isinstance(progress_bar(5), PlainProgress)
    monkeypatch.setattr(progress.sys, "stderr", Terminal())
    bar = progress_bar(5)
    assert not isinstance(bar, PlainProgress)
    bar.close()
    assert progress_bar(5, enabled=False) is None


def test_train_command_writes_plain_progress_to_a_pipe(tmp_path, run_cli):
    result = run_cli("train", "--out", str(tmp_path / "run"), "--steps", "3", "--dim", "16",
                     "--n-layers", "1", "--n-heads", "2", "--seq-len", "16", "--samples", "0")
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr
    assert "3/3 steps (100%)" in result.stderr
    assert "encoding the train split" in result.stderr
