"""`tinyllama-np seq2seq` and `tinyllama-np bert` end to end (a few steps), and their bad input."""

import pytest

QUICK = ["--steps", "3", "--batch-size", "8", "--held-out", "20", "--dim", "16", "--quiet"]


@pytest.mark.parametrize("model", ["encoder-decoder", "llama"])
def test_trains_scores_and_translates(run_cli, model):
    result = run_cli("seq2seq", "--model", model, "--translate", "342", "10005", *QUICK)
    assert result.returncode == 0, result.stderr
    assert "held-out exact match en-zh" in result.stdout and "held-out exact match zh-en" in result.stdout
    assert "three hundred and forty-two ->" in result.stdout and "一万零五 ->" in result.stdout


def test_beam_search(run_cli):
    result = run_cli("seq2seq", "--beams", "2", *QUICK)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("arguments, message", [
    (["--translate", "100000"], "0..99999"),
    (["--steps", "0"], "steps must be at least 1"),
    (["--model", "llama", "--beams", "2"], "encoder-decoder only"),
    (["--held-out", "0"], "held_out"),
    (["--dim", "10"], "divisible by n_heads"),
])
def test_bad_input_is_one_line(run_cli, arguments, message):
    result = run_cli("seq2seq", *QUICK, *arguments)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


BERT_QUICK = ["--steps", "2", "--batch-size", "4", "--train-stories", "20", "--held-out-stories", "10",
              "--pairs", "20", "--dim", "16", "--quiet"]


def test_bert_command(run_cli):
    result = run_cli("bert", *BERT_QUICK, "--fill", "Mia liked to [MASK] rope.")
    assert result.returncode == 0, result.stderr
    assert "held-out MLM accuracy at [MASK]" in result.stdout and "NSP accuracy" in result.stdout
    assert "'Mia liked to [MASK] rope.': [" in result.stdout


@pytest.mark.parametrize("arguments, message", [
    (["--fill", "no blank here"], "exactly one [MASK]"),
    (["--train-stories", "1"], "--train-stories"),
    (["--steps", "0"], "steps must be at least 1"),
])
def test_bert_bad_input_is_one_line(run_cli, arguments, message):
    result = run_cli("bert", *BERT_QUICK, *arguments)
    assert result.returncode == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
