"""SFT data: reading conversations, the plain format, masked targets, padding."""

import json

import numpy as np
import pytest

import tinyllama_np as tl
from tinyllama_np.nn import CrossEntropyLoss
from tinyllama_np.stories.qa import story_questions
from tinyllama_np.training.sft import (PromptCompletionFormat, conversation_from_record,
                                       encode_conversation, make_examples, pad_batch,
                                       read_conversations, sft_targets)

FORMAT = PromptCompletionFormat()


@pytest.fixture(scope="module")
def tokenizer():
    return tl.BPETokenizer.train("Mia went to the park. Question: Who? Answer: Mia. 小猫 " * 20, 300)


def test_plain_format_segments():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"},
                {"role": "assistant", "content": " Hello."}, {"role": "user", "content": "Again?"}]
    assert FORMAT.render_segments(messages) == [("Be brief.\nHi?", False), (" Hello.", True),
                                                ("Again?", False)]
    pair = conversation_from_record({"prompt": "Q:", "completion": " A"}, "x:1")
    assert FORMAT.render_segments(pair) == [("Q:", False), (" A", True)]


@pytest.mark.parametrize("line, message", [
    ('{"prompt": "a", "completion": ', "line 2: not valid JSON"),
    ('[1, 2]', "line 2: expected a JSON object"),
    ('{"text": "a"}', "line 2: expected 'messages'"),
    ('{"messages": [{"role": "user", "content": "a"}]}', "line 2: the conversation has no assistant"),
    ('{"messages": [{"role": "bot", "content": "a"}]}', "line 2: message 1 has unknown role 'bot'"),
    ('{"messages": [{"role": "user"}]}', "line 2: message 1 needs 'role' and 'content'"),
    ('{"prompt": 3, "completion": "b"}', "line 2: message 1's content must be a string"),
])
def test_bad_jsonl_names_the_line(line, message, tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text('{"prompt": "ok", "completion": " yes"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        read_conversations(path)


def test_empty_jsonl_is_refused(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(ValueError, match="no conversations"):
        read_conversations(tmp_path / "empty.jsonl")


def test_targets_are_the_answer_and_its_end_of_turn(tokenizer):
    messages = conversation_from_record({"prompt": "Mia went to the park. Question: Who? Answer:",
                                         "completion": " Mia."}, "x")
    ids, is_output = encode_conversation(messages, FORMAT, tokenizer)
    answer = tokenizer.encode(" Mia.") + [tokenizer.eos_id]
    assert ids[0] == tokenizer.bos_id and ids[-len(answer):].tolist() == answer
    inputs, targets = sft_targets(ids, is_output)
    assert len(inputs) == len(ids) - 1
    assert targets[targets >= 0].tolist() == answer
    assert (targets[:-len(answer)] == -1).all()


def test_prompt_targets_never_change_the_loss(tokenizer, rng):
    messages = conversation_from_record({"prompt": "Mia went to the park. Question: Who? Answer:",
                                         "completion": " Mia."}, "x")
    ids, is_output = encode_conversation(messages, FORMAT, tokenizer)
    model = tl.Llama(tl.LlamaConfig(tokenizer.vocab_size, 16, 1, 2, max_seq_len=64), seed=1,
                     dtype=np.float64)
    inputs, targets = sft_targets(ids, is_output)
    loss, _ = model.loss_and_grads(inputs[None], targets[None])
    # The loss is the mean of -log p(answer token) over the answer's positions alone.
    logits = model.forward(inputs[None])[0]
    log_probs = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
        - logits.max(-1, keepdims=True)
    answer_positions = np.flatnonzero(is_output[1:])
    np.testing.assert_allclose(loss, -log_probs[answer_positions, ids[1:][answer_positions]].mean())
    # Changing the next-token label at any prompt position changes nothing ...
    for position in np.flatnonzero(~is_output[1:]):
        changed = ids.copy()
        changed[position + 1] = (changed[position + 1] + 7) % tokenizer.vocab_size
        _, changed_targets = sft_targets(changed, is_output)
        changed_loss, _ = model.loss_and_grads(inputs[None], changed_targets[None])
        assert changed_loss == loss
    # ... while changing an answer token's label does.
    changed = ids.copy()
    changed[answer_positions[0] + 1] = (changed[answer_positions[0] + 1] + 7) % tokenizer.vocab_size
    assert model.loss_and_grads(inputs[None], sft_targets(changed, is_output)[1][None])[0] != loss


def test_long_conversations_are_refused_or_truncated_with_counts(tokenizer):
    short = conversation_from_record({"prompt": "Who?", "completion": " Mia."}, "x")
    long = conversation_from_record({"prompt": "Mia went to the park. " * 3, "completion": " Mia." * 5}, "x")
    no_room = conversation_from_record({"prompt": "Mia went to the park. " * 10, "completion": " Mia."}, "x")
    length = len(encode_conversation(long, FORMAT, tokenizer)[0])
    max_len = length - 4
    examples, counts = make_examples([short, long, no_room], FORMAT, tokenizer, max_len, "refuse")
    assert counts == {"kept": 1, "truncated": 0, "refused": 2} and len(examples) == 1
    examples, counts = make_examples([short, long, no_room], FORMAT, tokenizer, max_len, "truncate")
    assert counts == {"kept": 2, "truncated": 1, "refused": 1}
    assert len(examples[1][0]) == max_len and (examples[1][1] >= 0).any()
    with pytest.raises(ValueError, match="overflow"):
        make_examples([short], FORMAT, tokenizer, max_len, "drop")


def test_padded_batch_equals_examples_alone(tokenizer):
    conversations = [conversation_from_record(r, "x") for r in (
        {"prompt": "Who?", "completion": " Mia."},
        {"prompt": "Mia went to the park. Question: Who? Answer:", "completion": " Mia went."},
        {"prompt": "小猫", "completion": " Mia"})]
    examples, _ = make_examples(conversations, FORMAT, tokenizer, 64)
    tokens, targets, mask = pad_batch(examples)
    assert tokens.shape == (3, max(len(i) for i, _ in examples))
    assert (targets[~mask] == -1).all()
    model = tl.Llama(tl.LlamaConfig(tokenizer.vocab_size, 16, 2, 2, max_seq_len=64), seed=2,
                     dtype=np.float64)
    loss_fn = CrossEntropyLoss()
    batch_logits = model.forward(tokens, attention_mask=mask)
    batch_loss = loss_fn.forward(batch_logits, targets)
    total, count = 0.0, 0
    for row, (inputs, example_targets) in enumerate(examples):
        alone = model.forward(inputs[None])
        np.testing.assert_allclose(batch_logits[row, :len(inputs)], alone[0], atol=1e-12)
        n = int((example_targets >= 0).sum())
        total += loss_fn.forward(alone, example_targets[None]) * n
        count += n
    np.testing.assert_allclose(batch_loss, total / count, rtol=1e-12)


def test_story_questions_are_answerable_and_reproducible():
    first = story_questions(40, seed=5)
    assert first == story_questions(40, seed=5)
    assert {r["language"] for r in first} == {"en", "zh"}
    assert {r["kind"] for r in first} >= {"hero", "animal", "friend", "thing"}
    for record in first:
        story = record["prompt"].split("\n")[0]
        assert record["completion"].strip() in story
        assert json.loads(json.dumps(record, ensure_ascii=False)) == record
    assert story_questions(40, seed=6)[0]["prompt"] != first[0]["prompt"]


class MarkerFormat:
    """A template that writes its own markers as text, as ChatML and LLaMA 3 do."""

    def render_segments(self, messages, add_generation_prompt=False):
        return [("<|begin_of_text|>user: " + messages[0]["content"] + "\nassistant:", False),
                (messages[1]["content"] + "<|end_of_text|>", True)]


def test_a_template_with_marker_text_plugs_in(tokenizer):
    messages = conversation_from_record({"prompt": "Who?", "completion": " Mia."}, "x")
    ids, is_output = encode_conversation(messages, MarkerFormat(), tokenizer)
    assert ids[0] == tokenizer.bos_id and ids[-1] == tokenizer.eos_id  # markers became their ids
    assert (ids == tokenizer.eos_id).sum() == 1  # no extra EOS: the template wrote its own
    _, targets = sft_targets(ids, is_output)
    assert targets[targets >= 0].tolist() == tokenizer.encode(" Mia.") + [tokenizer.eos_id]
