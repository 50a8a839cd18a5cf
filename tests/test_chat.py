"""Chat formats: our hand-written formatters against transformers' apply_chat_template
(which runs the model's real Jinja template), token for token."""

import json
import os

import pytest

import tinyllama_np as tl
from tinyllama_np.generation.chat import (FORMATS, detect_chat_format, end_of_turn_id,
                                          render_segments)
from tinyllama_np.training.sft import chat_format_for, encode_conversation

# The templates as the models ship them (SmolLM2-135M-Instruct's, Meta LLaMA 3 Instruct's,
# TinyLlama-1.1B-Chat's): the chat format is a property of each model.
TEMPLATES = {
    "chatml": "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",  # noqa: E501
    "llama3": "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",  # noqa: E501
    "llama2": "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}",  # noqa: E501
    "zephyr": "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}",  # noqa: E501
}
SPECIALS = {"chatml": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
            "llama3": ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                       "<|end_header_id|>", "<|eot_id|>"],
            "zephyr": ["<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>"],
            "llama2": ["<unk>", "<s>", "</s>"]}
BOS_EOS = {"chatml": ("<|im_start|>", "<|im_end|>"),
           "llama3": ("<|begin_of_text|>", "<|eot_id|>"), "zephyr": ("<s>", "</s>"),
           "llama2": ("<s>", "</s>")}
CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You answer in one word."},
     {"role": "user", "content": "Capital of France?"},
     {"role": "assistant", "content": "Paris."},
     {"role": "user", "content": "  And of Germany?\n"}],
    [{"role": "user", "content": "你好！1 + 1 = ?"}, {"role": "assistant", "content": "2 😀"}],
]


def build(chat_format, tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    if chat_format == "llama2":  # LLaMA 2's SentencePiece-style BPE with byte fallback
        from tokenizers import normalizers
        from test_tokenizer_huggingface import sentencepiece_style
        tokenizer, path = sentencepiece_style(tmp_path, "llama2", normalizers.Sequence([
            normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]), None,
            specials=SPECIALS["llama2"])
        os.replace(path, tmp_path / "tokenizer.json")
        (tmp_path / "tokenizer_config.json").write_text(json.dumps(
            {"chat_template": TEMPLATES["llama2"], "bos_token": "<s>", "eos_token": "</s>"}))
        return tokenizer
    from tokenizers import decoders, pre_tokenizers
    from tokenizers.models import BPE
    from tokenizers.trainers import BpeTrainer
    tokenizer = tokenizers.Tokenizer(BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(vocab_size=400, special_tokens=SPECIALS[chat_format],
                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                         show_progress=False)
    tokenizer.train_from_iterator(["What is the capital of France? Paris. 你好"] * 50, trainer)
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    bos, eos = BOS_EOS[chat_format]
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"chat_template": TEMPLATES[chat_format], "bos_token": bos, "eos_token": eos}))
    return tokenizer


@pytest.mark.parametrize("chat_format", sorted(TEMPLATES))
@pytest.mark.reference
def test_chat_prompt_matches_apply_chat_template(chat_format, tmp_path):
    transformers = pytest.importorskip("transformers")
    reference_tokenizer = build(chat_format, tmp_path)
    bos, eos = BOS_EOS[chat_format]
    reference = transformers.PreTrainedTokenizerFast(
        tokenizer_object=reference_tokenizer, bos_token=bos, eos_token=eos,
        chat_template=TEMPLATES[chat_format])
    ours = tl.load_tokenizer(tmp_path)
    assert detect_chat_format(ours.chat_template) == chat_format
    for messages in CONVERSATIONS:
        if chat_format == "llama2" and messages[-1]["role"] == "assistant":
            messages = messages[:-1]  # its template ends each exchange on the user's turn
        for generation_prompt in (True, False):
            expected = reference.apply_chat_template(messages, tokenize=True,
                                                     add_generation_prompt=generation_prompt)
            if isinstance(expected, dict) or hasattr(expected, "keys"):
                expected = expected["input_ids"]
            got = tl.chat_prompt(messages, ours, add_generation_prompt=generation_prompt)
            assert got == list(expected), (messages, generation_prompt)
            # Fine-tuning renders the same ids (and marks the answers among them).
            ids, _ = encode_conversation(messages, chat_format_for(ours), ours, generation_prompt)
            assert ids.tolist() == list(expected), (messages, generation_prompt)


@pytest.mark.parametrize("chat_format", FORMATS)
def test_segments_flag_exactly_the_answers_and_their_end_token(chat_format):
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "Bye"},
                {"role": "assistant", "content": "Goodbye."}]
    segments = render_segments(messages, chat_format)
    answers = [text for text, is_answer in segments if is_answer]
    end = {"chatml": "<|im_end|>", "llama3": "<|eot_id|>", "llama2": " </s>",
           "zephyr": "</s>"}[chat_format]
    assert [a.strip() for a in answers] == [("Hello!" + end).strip(), ("Goodbye." + end).strip()]
    assert "Hi" in "".join(text for text, is_answer in segments if not is_answer)
    with_prompt = render_segments(messages[:2], chat_format, add_generation_prompt=True)
    assert not any(flag for _, flag in with_prompt)


def test_unknown_template_and_bad_messages_are_refused(tmp_path):
    with pytest.raises(ValueError, match="chatml, llama3, llama2, zephyr"):
        detect_chat_format("{{ messages[0]['content'] }}<custom>")
    with pytest.raises(ValueError, match="role"):
        render_segments([{"role": "robot", "content": "x"}], "chatml")
    with pytest.raises(ValueError, match="alternate"):
        render_segments([{"role": "assistant", "content": "x"}], "llama2")


@pytest.mark.reference
def test_end_of_turn_token(tmp_path):
    pytest.importorskip("tokenizers")
    build("chatml", tmp_path)
    tokenizer = tl.load_tokenizer(tmp_path)
    assert end_of_turn_id(tokenizer, "chatml") == tokenizer.special_tokens["<|im_end|>"]
