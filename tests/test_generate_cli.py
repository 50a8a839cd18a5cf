"""`tinyllama-np generate`, with small stand-ins for the model and the tokenizer."""

import io

import numpy as np
import pytest

import tinyllama_np as tl
from tinyllama_np.cli import generate as generate_cli
from tinyllama_np.cli import build_parser, main


class ByteTokenizer:
    """A stand-in tokenizer: one token per UTF-8 byte, then BOS (256) and EOS (257), which
    decode to their names (as the project's BPE tokenizer does)."""
    vocab_size = 258
    bos_id = 256
    eos_id = 257
    NAMES = {256: b"<|begin_of_text|>", 257: b"<|end_of_text|>"}

    def encode(self, text):
        return list(text.encode("utf-8"))

    def decode(self, ids):
        pieces = (self.NAMES[i] if i in self.NAMES else bytes([i]) for i in ids)
        return b"".join(pieces).decode("utf-8", errors="replace")


class NoSpecialsTokenizer(ByteTokenizer):
    vocab_size = 256

    @property
    def bos_id(self):
        raise ValueError("this tokenizer has no <|begin_of_text|> special token")

    eos_id = property(bos_id.fget)


def make_model(max_seq_len=40):
    config = tl.LlamaConfig(vocab_size=258, dim=16, n_layers=2, n_heads=2, hidden_dim=32,
                            max_seq_len=max_seq_len)
    model = tl.Llama(config, seed=1)
    rng = np.random.default_rng(1)
    for param in model.params.values():
        if param.ndim == 2:
            param[...] = rng.standard_normal(param.shape) / np.sqrt(param.shape[1])
    return model


def run(argv, model=None, tokenizer=None):
    args = build_parser().parse_args(["generate", "--checkpoint", "unused"] + argv)
    out, err = io.StringIO(), io.StringIO()
    generate_cli.run_with(model or make_model(), tokenizer or ByteTokenizer(), args, out, err)
    return out.getvalue(), err.getvalue()


def test_greedy_prints_prompt_and_continuation():
    model, tokenizer = make_model(), ByteTokenizer()
    out, err = run(["--prompt", "ab", "--strategy", "greedy", "--max-new-tokens", "12"], model)
    new_ids = tl.generate(model, [256, 97, 98], 12, temperature=0, eos_id=257)
    assert out == "ab" + tokenizer.decode(new_ids) + "\n"
    assert "greedy" in err and "tokens/s" in err


def test_bos_and_eos_are_not_printed():
    model = make_model()
    greedy = tl.generate(model, [256, 97], 10, temperature=0)
    model.params["output.weight"][257] = model.params["output.weight"][greedy[2]] * 2
    new_ids = tl.generate(model, [256, 97], 10, temperature=0, eos_id=257)
    assert new_ids[-1] == 257 and len(new_ids) < 10  # this model now ends with EOS
    out, _ = run(["--prompt", "a", "--strategy", "greedy", "--max-new-tokens", "10"], model)
    assert out == "a" + ByteTokenizer().decode(new_ids[:-1]) + "\n"
    assert "<|" not in out


def test_sampling_options_reach_generate():
    model = make_model()
    out, _ = run(["--prompt", "x", "--strategy", "top-k", "--top-k", "3", "--seed", "5",
                  "--temperature", "0.7", "--max-new-tokens", "8"], model)
    new_ids = tl.generate(model, [256, 120], 8, top_k=3, temperature=0.7, seed=5, eos_id=257)
    assert out == "x" + ByteTokenizer().decode(new_ids) + "\n"
    assert run(["--prompt", "x", "--strategy", "top-k", "--top-k", "3", "--seed", "5",
                "--temperature", "0.7", "--max-new-tokens", "8"], model)[0] == out


def test_compare_runs_four_strategies():
    out, _ = run(["--prompt", "hi", "--compare", "--max-new-tokens", "5", "--seed", "0",
                  "--num-beams", "2"])
    headers = [line for line in out.splitlines() if line.startswith("--- ")]
    assert headers == ["--- greedy", "--- beam (num-beams 2)",
                       "--- top-k (top-k 40, temperature 1.0)",
                       "--- top-p (top-p 0.9, temperature 1.0)"]


def test_empty_prompt_starts_from_bos():
    out, _ = run(["--prompt", "", "--strategy", "greedy", "--max-new-tokens", "4"])
    assert out.endswith("\n")
    with pytest.raises(ValueError, match="empty and the tokenizer has no BOS"):
        run(["--prompt", "", "--strategy", "greedy"], tokenizer=NoSpecialsTokenizer())


def test_generation_stops_at_the_context_limit_with_a_note():
    out, err = run(["--prompt", "abcdefgh", "--strategy", "greedy", "--max-new-tokens", "50"],
                   make_model(max_seq_len=12))
    assert "generating 3 new tokens, not 50" in err
    with pytest.raises(ValueError, match="more than the model's context"):
        run(["--prompt", "a" * 20, "--strategy", "greedy"], make_model(max_seq_len=12))


@pytest.mark.parametrize("argv, message", [
    (["--strategy", "greedy", "--top-k", "5"], "--top-k does not apply to --strategy greedy"),
    (["--strategy", "beam", "--temperature", "0.5"], "--temperature does not apply"),
    (["--strategy", "top-p", "--num-beams", "3"], "--num-beams does not apply"),
    (["--compare", "--strategy", "beam"], "leave out --strategy"),
    (["--strategy", "top-p", "--top-p", "1.5"], "top_p must lie in"),
    (["--strategy", "beam", "--num-beams", "0"], "num_beams"),
    (["--max-new-tokens", "-3"], "--max-new-tokens"),
])
def test_bad_options_are_clear_errors(argv, message):
    with pytest.raises(ValueError, match=message):
        run(["--prompt", "a"] + argv)


def test_split_characters_are_held_back_until_complete():
    tokenizer = ByteTokenizer()
    out = io.StringIO()
    writes = []
    out.write = lambda text: writes.append(text)
    printer = generate_cli.TextPrinter(tokenizer, [], out)
    for token in "你好!".encode("utf-8"):  # 3 + 3 + 1 bytes
        printer.add(token)
    printer.show(final=True)
    assert "".join(writes) == "你好!" and writes == ["你", "好", "!"]


def test_command_line_loads_checkpoint_and_tokenizer(tmp_path, capsys):
    # The folder layout of a training run: DIR/model.npz with DIR/tokenizer.model beside it.
    tokenizer = tl.BPETokenizer.train("ab ba abba baab " * 20, 262)
    tokenizer.save(tmp_path / "tokenizer.model")
    model = tl.Llama(tl.LlamaConfig(vocab_size=tokenizer.vocab_size, dim=16, n_layers=1,
                                    n_heads=2, max_seq_len=32), seed=0)
    tl.save_checkpoint(model, tmp_path / "model.npz")
    code = main(["generate", "--checkpoint", str(tmp_path), "--prompt", "ab",
                 "--strategy", "beam", "--max-new-tokens", "6"])
    assert code == 0
    expected = tl.generate(model, [tokenizer.bos_id] + tokenizer.encode("ab"), 6, num_beams=4)
    expected = [t for t in expected if t != tokenizer.eos_id]
    assert capsys.readouterr().out.startswith("ab" + tokenizer.decode(expected))

    # A checkpoint file: the tokenizer is looked for in its folder.
    code = main(["generate", "--checkpoint", str(tmp_path / "model.npz"), "--prompt", "a",
                 "--max-new-tokens", "2", "--seed", "0"])
    assert code == 0
    assert capsys.readouterr().out.startswith("a")

    code = main(["generate", "--checkpoint", str(tmp_path / "missing"), "--prompt", "a"])
    assert code == 1
    assert "no such checkpoint" in capsys.readouterr().err
    code = main(["generate", "--checkpoint", str(tmp_path), "--prompt", "a",
                 "--strategy", "greedy", "--top-p", "0.5"])
    assert code == 1
    assert "--top-p does not apply to --strategy greedy" in capsys.readouterr().err
