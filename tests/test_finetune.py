"""Fine-tuning: the loop (exact resume, only adapters trained and saved), every checkpoint
format as a base, and `tinyllama-np finetune` end to end with its bad input."""

import json
import os

import numpy as np
import pytest

import tinyllama_np as tl
from tinyllama_np.stories.qa import story_questions, write_jsonl
from tinyllama_np.training.finetune import FinetuneSettings, finetune, prepare_model
from tinyllama_np.training.sft import (PromptCompletionFormat, chat_format_for, conversation_from_record,
                                       encode_conversation, make_examples, sft_targets)

CONFIG = tl.LlamaConfig(2048, 32, 2, 2, hidden_dim=64, max_seq_len=128)


@pytest.fixture(scope="module")
def tokenizer():
    return tl.load_tokenizer("data/tokenizer.model")


@pytest.fixture(scope="module")
def examples(tokenizer):
    conversations = [conversation_from_record(r, "x") for r in story_questions(20, seed=11)]
    found, _ = make_examples(conversations, PromptCompletionFormat(), tokenizer, 128)
    return found[:-4], found[-4:]


def quick(**changes):
    return FinetuneSettings(steps=4, batch_size=2, eval_interval=2, checkpoint_interval=2, **changes)


def test_resume_is_exact_and_state_holds_only_adapters(tmp_path, examples):
    train, val = examples
    straight = tl.Llama(CONFIG, seed=3)
    prepare_model(straight, quick())
    finetune(quick(), straight, train, val, tmp_path / "a", progress=False)
    stopped = tl.Llama(CONFIG, seed=3)
    prepare_model(stopped, quick())
    finetune(quick(), stopped, train, val, tmp_path / "b", stop_at=2, progress=False)
    resumed = tl.Llama(CONFIG, seed=3)
    prepare_model(resumed, quick())
    finetune(quick(), resumed, train, val, tmp_path / "b", resume=True, progress=False, log=lambda *_: None)
    for name in straight.params:
        np.testing.assert_array_equal(straight.params[name], resumed.params[name])
    with np.load(tmp_path / "a" / "finetune_state.npz") as state:
        saved = {n for n in state.files if n.startswith("param.")}
        moments = {n for n in state.files if n.startswith("optim.")}
    adapters = {f"param.{n}" for n in straight.grads}
    assert saved == adapters and all(".lora_" in n for n in saved)
    assert len(moments) == 2 * len(adapters)  # m and v of the adapters, none for base weights
    base = tl.Llama(CONFIG, seed=3)
    for name in base.params:  # the base weights did not move
        np.testing.assert_array_equal(base.params[name], straight.params[name])
    log = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4] and "val_loss" in log[3]


@pytest.mark.parametrize("method", ["full", "freeze"])
def test_full_and_frozen_fine_tuning(method, tmp_path, examples):
    settings = quick(method=method, freeze=["tok_embeddings", "layers.0."] if method == "freeze" else [])
    model = tl.Llama(CONFIG, seed=3)
    trainable = prepare_model(model, settings)
    if method == "full":
        assert set(trainable) == set(model.params)
    else:
        assert not any(n.startswith(("tok_embeddings", "layers.0.")) for n in trainable)
        assert "layers.1.attention.wq.weight" in trainable
    before = {n: v.copy() for n, v in model.params.items()}
    finetune(settings, model, *examples, tmp_path / method, progress=False)
    for name, value in model.params.items():
        assert np.array_equal(value, before[name]) == (name not in trainable), name


@pytest.mark.parametrize("form", ["npz", "llama2c", "hf"])
def test_every_checkpoint_format_is_a_base(form, tmp_path, examples):
    base = tl.Llama(CONFIG, seed=4)
    path = tl.save_checkpoint(base, tmp_path / ("base.npz" if form == "npz" else "base.bin" if form == "llama2c" else "hf"),
                              format=form)
    model = tl.load_checkpoint(path)
    prepare_model(model, quick())
    finetune(quick(), model, *examples, tmp_path / "run", progress=False)
    assert any(np.abs(model.params[n]).max() > 0 for n in model.grads if n.endswith("lora_B"))


def test_finetune_command_end_to_end(tmp_path, run_cli):
    base = tmp_path / "base"
    base.mkdir()
    tl.save_checkpoint(tl.Llama(CONFIG, seed=5), base / "model.npz")
    tl.load_tokenizer("data/tokenizer.model").save(base / "tokenizer.model")
    write_jsonl(tmp_path / "qa.jsonl", story_questions(30, seed=12))
    out = tmp_path / "out"
    args = ["finetune", "--checkpoint", str(base), "--data", str(tmp_path / "qa.jsonl"), "--out",
            str(out), "--steps", "4", "--batch-size", "2", "--eval-interval", "2", "--samples", "2"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert "refused as longer than 128 tokens" in result.stdout
    for name in ["adapter.npz", "adapter_peft/adapter_config.json", "adapter_peft/adapter_model.safetensors",
                 "model.npz", "tokenizer.model", "samples.json", "log.jsonl", "finetune_state.npz"]:
        assert (out / name).is_file(), name
    samples = json.loads((out / "samples.json").read_text())
    assert len(samples["answers"]) == 2 and 0 <= samples["exact_match"] <= 1
    # The merged model equals base + adapter.
    merged = tl.load_checkpoint(out)
    adapted = tl.load_checkpoint(base)
    tl.load_adapter(adapted, out / "adapter.npz")
    tokens = np.arange(10)[None]
    np.testing.assert_allclose(merged.forward(tokens), adapted.forward(tokens), atol=1e-5)
    again = run_cli(*args)
    assert again.returncode == 1 and "already holds a fine-tuning run" in again.stderr


@pytest.mark.parametrize("extra, data, message", [
    (["--lora-targets", "wq", "attn"], None, "'attn' matches no layer"),
    (["--lora-rank", "0"], None, "rank must be a positive integer"),
    ([], '{"prompt": "a", "completion": " b"}\n{"prompt": \n', "qa.jsonl, line 2: not valid JSON"),
    ([], '{"messages": [{"role": "user", "content": "a"}]}\n', "line 1: the conversation has no assistant turn"),
])
def test_finetune_command_bad_input(extra, data, message, tmp_path, run_cli):
    base = tmp_path / "base"
    base.mkdir()
    tl.save_checkpoint(tl.Llama(CONFIG, seed=5), base / "model.npz")
    tl.load_tokenizer("data/tokenizer.model").save(base / "tokenizer.model")
    if data is None:
        write_jsonl(tmp_path / "qa.jsonl", story_questions(10, seed=12))
    else:
        (tmp_path / "qa.jsonl").write_text(data)
    result = run_cli("finetune", "--checkpoint", str(base), "--data", str(tmp_path / "qa.jsonl"),
                     "--out", str(tmp_path / "out"), "--steps", "2", *extra)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "finetune_state.npz").exists()


CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
          "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}")


@pytest.fixture(scope="module")
def chatml_tokenizer():
    """A small BPE with ChatML's markers as special tokens and a ChatML template, as an
    instruct model's tokenizer has."""
    text = "".join(r["prompt"] + r["completion"] for r in story_questions(40, seed=13))
    tokenizer = tl.BPETokenizer.train(text, 320, special_tokens=(
        "<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>"))
    tokenizer.chat_template = CHATML
    return tokenizer


def test_a_model_with_a_chat_template_learns_in_that_format(chatml_tokenizer):
    tokenizer = chatml_tokenizer
    assert chat_format_for(tl.load_tokenizer("data/tokenizer.model")).name == "plain"
    chat_format = chat_format_for(tokenizer)
    assert chat_format.name == "chatml"
    im_start, im_end = tokenizer.special_tokens["<|im_start|>"], tokenizer.special_tokens["<|im_end|>"]
    assert chat_format.stop_id(tokenizer) == im_end
    messages = [{"role": "user", "content": "Who?"}, {"role": "assistant", "content": "Mia"}]
    ids, is_output = encode_conversation(messages, chat_format, tokenizer)
    assert ids[0] == im_start and (ids == tokenizer.eos_id).sum() == 0  # no BOS, no extra EOS
    _, targets = sft_targets(ids, is_output)
    assert targets[targets >= 0].tolist() == tokenizer.encode("Mia") + [im_end]
    prompt, _ = encode_conversation(messages[:1], chat_format, tokenizer, add_generation_prompt=True)
    assert tokenizer.decode(prompt.tolist()).endswith("<|im_start|>assistant\n")
    assert chat_format_for(tokenizer, "plain").name == "plain"


def test_finetune_command_on_a_gguf_file_uses_its_template(tmp_path, run_cli, chatml_tokenizer):
    config = tl.LlamaConfig(chatml_tokenizer.vocab_size, 32, 2, 2, hidden_dim=64, max_seq_len=1024)
    base = tl.save_checkpoint(tl.Llama(config, seed=6), tmp_path / "base.gguf", format="gguf",
                              tokenizer=chatml_tokenizer)
    write_jsonl(tmp_path / "qa.jsonl", story_questions(12, seed=14, language="en"))
    out = tmp_path / "out"
    result = run_cli("finetune", "--checkpoint", str(base), "--data", str(tmp_path / "qa.jsonl"),
                     "--out", str(out), "--steps", "2", "--batch-size", "2", "--samples", "1")
    assert result.returncode == 0, result.stderr
    assert "chat format: chatml" in result.stdout
    assert tl.load_tokenizer(out).chat_template == CHATML  # the GGUF file, copied as the tokenizer
    again = run_cli("finetune", "--eval-only", "--checkpoint", str(out), "--val-data",
                    str(tmp_path / "qa.jsonl"), "--samples", "1")
    assert again.returncode == 0, again.stderr
    assert "chat format: chatml" in again.stdout and "exact match on the first 1" in again.stdout
    merged = tl.load_checkpoint(out)
    assert merged.config.vocab_size == config.vocab_size


SMOLLM2 = os.environ.get("TINYLLAMA_NP_SMOLLM2")


@pytest.mark.skipif(not SMOLLM2 or not os.path.isfile(SMOLLM2),
                    reason="set TINYLLAMA_NP_SMOLLM2 to SmolLM2-135M-Instruct's GGUF file")
def test_lora_on_smollm2_lowers_the_loss_of_a_chinese_answer(tmp_path):
    """The real-model path end to end: GGUF weights, its tokenizer and ChatML template, LoRA
    on every projection, the loss on the answer only."""
    model, tokenizer = tl.load_checkpoint(SMOLLM2), tl.load_tokenizer(SMOLLM2)
    chat_format = chat_format_for(tokenizer)
    assert chat_format.name == "chatml"
    records = story_questions(2, seed=15, language="zh")[:2]
    examples, _ = make_examples([conversation_from_record(r, "x") for r in records], chat_format,
                                tokenizer, model.config.max_seq_len)
    settings = FinetuneSettings(steps=3, batch_size=2, lr=1e-3, warmup_steps=0, eval_interval=3,
                                checkpoint_interval=3, lora_targets=["wq", "wk", "wv", "wo", "w1", "w2", "w3"])
    prepare_model(model, settings)
    finetune(settings, model, examples, examples, tmp_path, progress=False)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert log[-1]["val_loss"] < 0.7 * log[0]["loss"], log
