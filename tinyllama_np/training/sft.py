"""Supervised fine-tuning (SFT) data: conversations in, token ids and masked targets out.

A JSONL file, one conversation per line, in either common form:

    {"messages": [{"role": "system", "content": "..."}, {"role": "user", "content": "..."},
                  {"role": "assistant", "content": "..."}]}
    {"prompt": "...", "completion": "..."}          (= one user turn, one assistant turn)

A chat format renders a conversation as text segments, each marked as the assistant's
output or not: `render_segments(messages) -> [(text, is_assistant_output), ...]`. Real
models bring their template (ChatML, LLaMA 3, ...: generation/chat.py); our own models
have none, so `PromptCompletionFormat` writes the prompt and then the answer, and ends each
answer with the tokenizer's end-of-text token, as pre-training ended each story.

The loss counts the answer only: the target at position t is token t+1 if that token is
the assistant's (its text or its end-of-turn token), else -1, which the loss ignores. The
model still reads the prompt (it is the input), but is never taught to produce it.

    BOS  Mia  went ... Question : Who ... ?  Answer :   Mia  EOS       tokens
    -1   -1   -1   ... -1       -1 -1  -1 -1  -1     Mia  EOS         targets (shifted)
"""

import json

import numpy as np

from ..generation.chat import encode_chat_text, end_of_turn_id, render_segments, tokenizer_chat_format
from ..nn import IGNORE_INDEX

ROLES = ("system", "user", "assistant")
OVERFLOW = ("refuse", "truncate")


class PromptCompletionFormat:
    """The template-less format: every message's text as it is, one after the other.

    {"prompt": p, "completion": c} becomes the text p + c, so the data decides the
    separator ("...\\nAnswer:" + " Mia"). Messages before an answer are joined by newlines.
    """
    add_bos = True          # begin with the tokenizer's BOS token, as in pre-training
    eos_after_reply = True  # the end-of-turn is the tokenizer's EOS token (no text for it)
    name = "plain"

    def stop_id(self, tokenizer):
        """The token that ends an answer."""
        return tokenizer.eos_id

    def render_segments(self, messages, add_generation_prompt=False):
        segments, pending = [], []
        for message in messages:
            if message["role"] == "assistant":
                if pending:
                    segments.append(("\n".join(pending), False))
                    pending = []
                segments.append((message["content"], True))
            else:
                pending.append(message["content"])
        if pending:  # the conversation ends with a question: the answer would come next
            segments.append(("\n".join(pending), False))
        return segments


class TemplateFormat:
    """A real model's own chat template (one of generation/chat.py's FORMATS), with the
    system prompt it inserts by default: its markers, BOS and end-of-turn are text in the
    rendered segments (ChatML's "<|im_end|>" is part of the assistant's segment)."""
    add_bos = False
    eos_after_reply = False

    def __init__(self, name, system=None):
        self.name, self.system = name, system

    def stop_id(self, tokenizer):
        return end_of_turn_id(tokenizer, self.name)

    def render_segments(self, messages, add_generation_prompt=False):
        return render_segments(messages, self.name, add_generation_prompt, self.system)


def chat_format_for(tokenizer, name="auto"):
    """The format to fine-tune in: "auto" takes the tokenizer's chat template if it has one
    (an instruct model is fine-tuned in the format it already knows) and "plain" otherwise;
    or a name: "plain" (PromptCompletionFormat) or one of chat.FORMATS."""
    if name == "plain" or (name == "auto" and not getattr(tokenizer, "chat_template", None)):
        return PromptCompletionFormat()
    return TemplateFormat(*tokenizer_chat_format(tokenizer, None if name == "auto" else name))


# --- reading ---------------------------------------------------------------------------

def conversation_from_record(record, where):
    """The messages of one JSONL record, checked. `where` names it in errors ("chat.jsonl, line 3")."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if "messages" in record:
        messages = record["messages"]
        if not isinstance(messages, list) or not messages:
            raise ValueError(f"{where}: 'messages' must be a non-empty list")
    elif "prompt" in record and "completion" in record:
        messages = [{"role": "user", "content": record["prompt"]},
                    {"role": "assistant", "content": record["completion"]}]
    else:
        raise ValueError(f"{where}: expected 'messages', or 'prompt' and 'completion'; got "
                         f"keys {sorted(record)}")
    for number, message in enumerate(messages, 1):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise ValueError(f"{where}: message {number} needs 'role' and 'content'")
        if message["role"] not in ROLES:
            raise ValueError(f"{where}: message {number} has unknown role {message['role']!r} "
                             f"(expected {', '.join(ROLES)})")
        if not isinstance(message["content"], str):
            raise ValueError(f"{where}: message {number}'s content must be a string")
    if not any(message["role"] == "assistant" for message in messages):
        raise ValueError(f"{where}: the conversation has no assistant turn, so nothing to learn")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def read_conversations(path):
    """Every conversation of a JSONL file (blank lines skipped); errors name file and line."""
    conversations = []
    with open(path, encoding="utf-8") as file:
        for line_number, line in enumerate(file, 1):
            if not line.strip():
                continue
            where = f"{path}, line {line_number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{where}: not valid JSON ({error.msg}, column {error.colno})") from None
            conversations.append(conversation_from_record(record, where))
    if not conversations:
        raise ValueError(f"{path} holds no conversations")
    return conversations


# --- tokens and targets -------------------------------------------------------------------

def encode_conversation(messages, chat_format, tokenizer, add_generation_prompt=False):
    """(ids, is_output): the token ids of the rendered conversation and, per token, whether
    it is the assistant's (trained on) or not. add_generation_prompt: end with the
    assistant's header, to make the model answer.

    The text is encoded as a whole, as a chat template's text is at inference: encoding each
    segment alone could split differently at the seams (a SentencePiece tokenizer adds a
    space at the start of every text it encodes). A segment's tokens are the ones that
    change or appear when its text is added; a plain format's EOS token after an answer
    starts the text afresh.
    """
    ids, is_output, text = [], [], ""
    done = 0  # tokens before the text being encoded (BOS, earlier answers and their EOS)
    if getattr(chat_format, "add_bos", False):
        ids, is_output, done = [tokenizer.bos_id], [False], 1
    for segment, assistant in chat_format.render_segments(messages, add_generation_prompt):
        text += segment
        tokens = encode_chat_text(text, tokenizer)  # markers as their special ids
        same = 0
        while same < min(len(tokens), len(ids) - done) and tokens[same] == ids[done + same]:
            same += 1
        ids = ids[:done] + tokens
        is_output = is_output[:done + same] + [assistant] * (len(tokens) - same)
        if assistant and getattr(chat_format, "eos_after_reply", False):
            ids.append(tokenizer.eos_id)
            is_output.append(True)
            text, done = "", len(ids)
    return np.array(ids, dtype=np.int64), np.array(is_output, dtype=bool)


def sft_targets(ids, is_output):
    """(inputs, targets): inputs ids[:-1]; targets ids[1:] where that token is the
    assistant's, IGNORE_INDEX (-1) elsewhere."""
    targets = np.where(is_output[1:], ids[1:], IGNORE_INDEX)
    return ids[:-1], targets


def make_examples(conversations, chat_format, tokenizer, max_len, overflow="refuse"):
    """(examples, counts). An example is (inputs, targets) of at most `max_len` positions.

    A conversation longer than that is refused (overflow="refuse") or cut to its first
    max_len + 1 tokens (overflow="truncate"; refused after all if no answer token is left).
    counts: {"kept": ..., "truncated": ..., "refused": ...}, for the log.
    """
    if overflow not in OVERFLOW:
        raise ValueError(f"overflow must be one of {', '.join(OVERFLOW)}, got {overflow!r}")
    examples, counts = [], {"kept": 0, "truncated": 0, "refused": 0}
    for messages in conversations:
        ids, is_output = encode_conversation(messages, chat_format, tokenizer)
        if len(ids) > max_len + 1:
            if overflow == "refuse":
                counts["refused"] += 1
                continue
            ids, is_output = ids[:max_len + 1], is_output[:max_len + 1]
            if not is_output[1:].any():
                counts["refused"] += 1
                continue
            counts["truncated"] += 1
        inputs, targets = sft_targets(ids, is_output)
        examples.append((inputs, targets))
        counts["kept"] += 1
    return examples, counts


def pad_batch(examples, pad_id=0):
    """(tokens, targets, attention_mask), each (B, T) with T the longest example.

    Padding goes on the right: its positions have target -1 and attention_mask False, and,
    as they come after every real token, the causal mask already keeps them from changing
    the real positions' outputs (so a padded example gives the same loss as alone).
    """
    length = max(len(inputs) for inputs, _ in examples)
    tokens = np.full((len(examples), length), pad_id, dtype=np.int64)
    targets = np.full((len(examples), length), IGNORE_INDEX, dtype=np.int64)
    mask = np.zeros((len(examples), length), dtype=bool)
    for row, (inputs, example_targets) in enumerate(examples):
        tokens[row, :len(inputs)] = inputs
        targets[row, :len(inputs)] = example_targets
        mask[row, :len(inputs)] = True
    return tokens, targets, mask
