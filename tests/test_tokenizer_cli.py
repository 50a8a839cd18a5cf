"""`load_tokenizer` format detection and the `tinyllama-np tokenizer ...` commands."""

import argparse
import io
import sys

import pytest

import tinyllama_np as tl
from tinyllama_np.cli import tokenizer as tokenizer_cli
from tinyllama_np.bench.tokenizer import mixed_text

from test_tokenizer_llama2c import tokenizer_bin_bytes


def run_cli(argv):
    """Parse and run a `tinyllama-np tokenizer ...` command line as tinyllama_np.cli does.

    Errors come out as ValueError/OSError, which tinyllama_np.cli.main turns into a
    one-line message and exit code 1."""
    parser = argparse.ArgumentParser(prog="tinyllama-np")
    subparsers = parser.add_subparsers(dest="command", required=True)
    tokenizer_cli.add_command(subparsers)
    args = parser.parse_args(argv)
    args.run(args)


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text(mixed_text(30_000, seed=2), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained_path(corpus_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("tok") / "tok.model"
    run_cli(["tokenizer", "train", "--data", str(corpus_file), "--vocab-size", "500",
             "--out", str(out)])
    return out


# ----- load_tokenizer -----

def test_load_tokenizer_recognises_each_format(trained_path, tmp_path):
    assert isinstance(tl.load_tokenizer(trained_path), tl.BPETokenizer)
    from_sidecar = tl.load_tokenizer(str(trained_path) + ".json")
    assert from_sidecar.ranks == tl.load_tokenizer(trained_path).ranks
    (tmp_path / "tokenizer.bin").write_bytes(tokenizer_bin_bytes())
    assert isinstance(tl.load_tokenizer(tmp_path), tl.Llama2cTokenizer)  # a folder
    # The name does not matter, the content does.
    (tmp_path / "tokenizer.model").write_bytes(tokenizer_bin_bytes())
    assert isinstance(tl.load_tokenizer(tmp_path / "tokenizer.model"), tl.Llama2cTokenizer)
    (tmp_path / "weird.bin").write_bytes(trained_path.read_bytes())
    assert isinstance(tl.load_tokenizer(tmp_path / "weird.bin"), tl.BPETokenizer)


def test_load_tokenizer_folder_with_a_rank_file(trained_path, tmp_path):
    (tmp_path / "tokenizer.model").write_bytes(trained_path.read_bytes())
    loaded = tl.load_tokenizer(tmp_path)
    assert isinstance(loaded, tl.BPETokenizer)
    assert len(loaded.special_tokens) == 256  # no sidecar: LLaMA 3's special tokens


def test_load_tokenizer_explains_what_it_cannot_read(tmp_path):
    with pytest.raises(ValueError, match="none of tokenizer.json, tokenizer.model"):
        tl.load_tokenizer(tmp_path)
    sentencepiece = tmp_path / "sp.model"
    sentencepiece.write_bytes(b"\n\x0e\n\x05<unk>\x15\x00\x00\x00\x00\x18\x02" + b"\x00" * 50)
    with pytest.raises(ValueError, match="SentencePiece protobuf"):
        tl.load_tokenizer(sentencepiece)
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("hello world, not a tokenizer\n")
    with pytest.raises(ValueError, match="garbage.txt.*not plausible"):
        tl.load_tokenizer(garbage)
    other_json = tmp_path / "config.txt"
    other_json.write_text('{"dim": 64}')
    with pytest.raises(ValueError, match="not a tokenizer.json"):
        tl.load_tokenizer(other_json)
    with pytest.raises(OSError):
        tl.load_tokenizer(tmp_path / "missing.model")


# ----- the commands -----

def test_train_writes_rank_file_and_sidecar(trained_path):
    tokenizer = tl.load_tokenizer(trained_path)
    assert tokenizer.vocab_size == 500
    assert (trained_path.parent / "tok.model.json").exists()


def test_train_into_a_folder_with_gpt2_pattern(corpus_file, tmp_path, capsys):
    run_cli(["tokenizer", "train", "--data", str(corpus_file), "--vocab-size", "300",
             "--out", str(tmp_path), "--pattern", "gpt2", "--special"])
    assert "trained 300 tokens" in capsys.readouterr().out
    tokenizer = tl.load_tokenizer(tmp_path)
    assert tokenizer.pattern == tl.tokenizer.GPT2_PATTERN
    assert tokenizer.special_tokens == {}


def test_encode_then_decode(trained_path, capsys):
    text = "Hello 世界, 12345!"
    run_cli(["tokenizer", "encode", "--tokenizer", str(trained_path), "--text", text,
             "--bos"])
    printed = capsys.readouterr().out.split()
    tokenizer = tl.load_tokenizer(trained_path)
    assert [int(word) for word in printed] == tokenizer.encode(text, bos=True)
    run_cli(["tokenizer", "decode", "--tokenizer", str(trained_path)] + printed[1:])
    assert capsys.readouterr().out == text + "\n"


def test_encode_from_stdin_with_show_and_specials(trained_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("a<|end_of_text|>"))
    run_cli(["tokenizer", "encode", "--tokenizer", str(trained_path), "--show",
             "--allow-special"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].split() == ["499", "'<|end_of_text|>'"]


def test_decode_from_stdin_and_bad_ids(trained_path, capsys, monkeypatch):
    tokenizer = tl.load_tokenizer(trained_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO(", ".join(map(str, tokenizer.encode("ok 好")))))
    run_cli(["tokenizer", "decode", "--tokenizer", str(trained_path)])
    assert capsys.readouterr().out == "ok 好\n"
    with pytest.raises(ValueError, match="not a token id: 'x'"):
        run_cli(["tokenizer", "decode", "--tokenizer", str(trained_path), "1", "x"])
    with pytest.raises(ValueError, match="unknown token id 500"):
        run_cli(["tokenizer", "decode", "--tokenizer", str(trained_path), "500"])


def test_train_refuses_bad_input(corpus_file, tmp_path):
    binary = tmp_path / "binary.dat"
    binary.write_bytes(b"abc\xff\xfe")
    with pytest.raises(ValueError, match="binary.dat: not UTF-8 text .byte offset 3"):
        run_cli(["tokenizer", "train", "--data", str(binary), "--vocab-size", "300",
                 "--out", str(tmp_path / "t.model")])
    with pytest.raises(ValueError, match="at least 256"):
        run_cli(["tokenizer", "train", "--data", str(corpus_file), "--vocab-size", "100",
                 "--out", str(tmp_path / "t.model")])
    with pytest.raises(OSError):
        run_cli(["tokenizer", "train", "--data", str(tmp_path / "missing.txt"),
                 "--vocab-size", "300", "--out", str(tmp_path / "t.model")])
    assert not (tmp_path / "t.model").exists()


def test_llama2c_tokenizer_through_the_cli(tmp_path, capsys):
    path = tmp_path / "tokenizer.bin"
    path.write_bytes(tokenizer_bin_bytes())
    run_cli(["tokenizer", "encode", "--tokenizer", str(path), "--text", "abc", "--bos"])
    assert capsys.readouterr().out.split() == ["1", "265", "264"]
    with pytest.raises(ValueError, match="no named special tokens"):
        run_cli(["tokenizer", "encode", "--tokenizer", str(path), "--text", "a",
                 "--allow-special"])


def test_bench_reports_training_time_and_throughput(capsys):
    run_cli(["tokenizer", "bench", "--bytes", "20000", "--vocab-size", "300"])
    out = capsys.readouterr().out
    assert "train to 300 tokens:" in out
    assert "MB/s" in out
    assert "bytes per token" in out

