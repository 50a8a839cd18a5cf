"""ChatSession and the chat command: the KV cache kept across turns changes nothing but speed."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest

import tinyllama_np as tl
from tinyllama_np.cli import main
from tinyllama_np.generation.chat_session import ChatSession
from tinyllama_np.tokenizer.merges_bpe import BYTE_TO_UNICODE

CHATML = "{{ '<|im_start|>' + message['role'] }}"  # enough for the format to be recognised
SPECIALS = ["<|im_start|>", "<|im_end|>"]


def chatml_tokenizer():
    """A byte-level tokenizer with no merges: one token per byte, plus ChatML's tokens."""
    vocab = {character: byte for byte, character in BYTE_TO_UNICODE.items()}
    added = {text: 256 + i for i, text in enumerate(SPECIALS)}
    tokenizer = tl.MergesBPETokenizer(vocab, [], "byte_level", added_tokens=added,
                                      special=SPECIALS, eos_id=added["<|im_end|>"])
    tokenizer.chat_template = CHATML
    return tokenizer


def tiny_model(max_seq_len=256):
    config = tl.LlamaConfig(vocab_size=258, dim=32, n_layers=2, n_heads=4, n_kv_heads=2,
                            max_seq_len=max_seq_len)
    return tl.Llama(config, seed=3, dtype=np.float64)


def test_the_second_turn_equals_a_fresh_run_of_the_whole_conversation():
    model, tokenizer = tiny_model(), chatml_tokenizer()
    session = ChatSession(model, tokenizer, system="Be brief.", max_new_tokens=6)
    first = list(session.reply("Hello there"))
    assert len(first) == 6 or first == []
    ran_before = session.cache.length
    second = list(session.reply("And again?"))
    messages = session.messages[:-1]  # up to the second user message
    prompt = tl.chat_prompt(messages, tokenizer)
    fresh = tl.generate(model, prompt, 6, temperature=0, eos_id=session.end_id)
    fresh = [t for t in fresh if t != session.end_id]
    assert second == fresh
    # The cache was reused: the second turn ran fewer tokens than its whole prompt.
    assert 0 < ran_before and session.cache.length == len(prompt) + len(second) - 1
    assert session.messages[-1] == {"role": "assistant", "content": tokenizer.decode(second)}


def test_stopping_an_answer_keeps_what_was_said():
    session = ChatSession(tiny_model(), chatml_tokenizer(), max_new_tokens=20)
    answer = session.reply("Tell me a story")
    said = [next(answer), next(answer)]
    answer.close()  # what Ctrl-C does in the chat command
    assert session.messages[-1]["content"] == session.tokenizer.decode(said)
    assert list(session.reply("Go on"))  # the conversation continues


def test_a_long_conversation_drops_its_oldest_turns():
    session = ChatSession(tiny_model(max_seq_len=120), chatml_tokenizer(), system="S",
                          max_new_tokens=8)
    for turn in range(6):
        list(session.reply(f"message number {turn} " * 2))
    assert session.dropped > 0
    assert session.messages[0] == {"role": "system", "content": "S"}
    assert "message number 0" not in str(session.messages)
    with pytest.raises(ValueError, match="does not fit"):
        list(session.reply("x" * 500))


def test_chat_command_runs_turns_from_standard_input(monkeypatch, capsys, tmp_path):
    model, tokenizer = tiny_model(), chatml_tokenizer()
    monkeypatch.setattr("tinyllama_np.cli.chat.load_model_and_tokenizer",
                        lambda checkpoint, tokenizer_path: (model, tokenizer))
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hi\nHow are you?\n"))
    assert main(["chat", "--checkpoint", "unused", "--max-new-tokens", "4"]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("> ") == 3  # two questions, then the end of input
    assert "chat format chatml" in captured.err


SMOLLM2 = os.environ.get("TINYLLAMA_NP_SMOLLM2")


@pytest.mark.skipif(not SMOLLM2 or not os.path.isfile(SMOLLM2),
                    reason="set TINYLLAMA_NP_SMOLLM2 to SmolLM2-135M-Instruct's GGUF file")
def test_smollm2_answers_through_the_chat_command():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    result = subprocess.run(
        [sys.executable, "-m", "tinyllama_np", "chat", "--checkpoint", SMOLLM2,
         "--max-new-tokens", "20"], input="What is the capital of France?\nAnd of Germany?\n",
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.split("> ")[1:3]
    print(result.stdout)
    assert "Paris" in first and "Berlin" in second  # the second needs the first turn
    result = subprocess.run(
        [sys.executable, "-m", "tinyllama_np", "generate", "--checkpoint", SMOLLM2, "--chat",
         "--prompt", "What is 2 + 2?", "--strategy", "greedy",
         "--max-new-tokens", "20"], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "4" in result.stdout and "<|im_start|>" not in result.stdout


def test_ctrl_c_in_the_chat_command_ends_the_answer_not_the_chat(monkeypatch, capsys):
    model, tokenizer = tiny_model(), chatml_tokenizer()
    monkeypatch.setattr("tinyllama_np.cli.chat.load_model_and_tokenizer",
                        lambda checkpoint, tokenizer_path: (model, tokenizer))
    monkeypatch.setattr(sys, "stdin", io.StringIO("First\nSecond\n"))
    from tinyllama_np.cli import generate as generate_cli
    original_add, calls = generate_cli.TextPrinter.add, []

    def add_then_interrupt(self, token):
        calls.append(token)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if Ctrl-C arrived while the answer was streaming
        original_add(self, token)

    monkeypatch.setattr(generate_cli.TextPrinter, "add", add_then_interrupt)
    assert main(["chat", "--checkpoint", "unused", "--max-new-tokens", "5"]) == 0
    out = capsys.readouterr().out
    assert out.count("[stopped]") == 1 and out.count("> ") == 3
    assert len(calls) == 2 + 5  # the second answer ran to its full length
