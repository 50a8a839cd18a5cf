"""Chat templates: a conversation as the exact text an instruct model was fine-tuned on.

An instruct model is a plain next-token predictor that learned, during fine-tuning, one way
of marking who speaks. SmolLM2 (ChatML) sees

    <|im_start|>system\\nYou are a helpful AI assistant ...<|im_end|>\\n
    <|im_start|>user\\nWhat is the capital of France?<|im_end|>\\n
    <|im_start|>assistant\\n                      <- the "generation prompt": its turn now

and answers until it produces its end-of-turn token (<|im_end|>). Models ship the format as
a Jinja template (tokenizer.chat_template); we do not run templates (no template engine as a
dependency) but recognise which of four formats it is and render that by hand:

    chatml   <|im_start|>role\\n ... <|im_end|>\\n                  SmolLM2, Qwen
    llama3   <|start_header_id|>role<|end_header_id|>\\n\\n ... <|eot_id|>   LLaMA 3
    llama2   <s>[INST] <<SYS>>\\n...\\n<</SYS>>\\n\\nuser [/INST] answer </s>   LLaMA 2 chat
    zephyr   <|user|>\\n ... </s>\\n<|assistant|>\\n                TinyLlama chat, Zephyr

`render_segments` gives the text as (text, is_assistant_output) pieces: the assistant's
words plus its end-of-turn token are True, the rest False. Supervised fine-tuning uses
this to compute the loss on the answers only (the prompt is "masked").
"""

import re

FORMATS = ("chatml", "llama3", "llama2", "zephyr")
END_OF_TURN = {"chatml": "<|im_end|>", "llama3": "<|eot_id|>", "llama2": "</s>",
               "zephyr": "</s>"}
# The string in a template that gives its format away.
MARKERS = [("<|im_start|>", "chatml"), ("<|start_header_id|>", "llama3"),
           ("[INST]", "llama2"), ("<|assistant|>", "zephyr")]
ROLES = ("system", "user", "assistant")


def detect_chat_format(template):
    """The name of the format of a Jinja chat template (ValueError if none of FORMATS)."""
    if not isinstance(template, str) or not template:
        raise ValueError("the model has no chat template (tokenizer.chat_template); pass "
                         f"chat_format= one of {', '.join(FORMATS)}")
    for marker, name in MARKERS:
        if marker in template:
            return name
    raise ValueError(f"unknown chat template {template[:80]!r}...: we render {', '.join(FORMATS)}"
                     " (pass chat_format= to choose one)")


def default_system_prompt(template, chat_format):
    """The system message a template inserts when the conversation has none (SmolLM2's
    "You are a helpful AI assistant named SmolLM, ..."), or None."""
    if chat_format != "chatml" or not template:
        return None
    found = re.search(r"<\|im_start\|>system(?:\\n|\n)(.*?)<\|im_end\|>", template, re.S)
    return found.group(1) if found else None


def check_messages(messages):
    if not isinstance(messages, (list, tuple)) or not messages:
        raise ValueError("messages must be a non-empty list of {'role': ..., 'content': ...}")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES or \
                not isinstance(message.get("content"), str):
            raise ValueError(f"message {index} must be {{'role': one of {ROLES}, 'content': "
                             f"text}}, got {message!r:.80}")


def render_segments(messages, chat_format, add_generation_prompt=False, system=None):
    """The conversation as [(text, is_assistant_output), ...] in `chat_format`.

    system: the default system prompt to insert when messages[0] is not a system message
    (None: insert none). add_generation_prompt: end with the assistant's header.
    """
    check_messages(messages)
    if chat_format not in FORMATS:
        raise ValueError(f"unknown chat format {chat_format!r}; we render {', '.join(FORMATS)}")
    messages = list(messages)
    if system is not None and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system})
    return RENDERERS[chat_format](messages, add_generation_prompt)


def _chatml(messages, add_generation_prompt):
    segments = []
    for message in messages:
        segments.append((f"<|im_start|>{message['role']}\n", False))
        if message["role"] == "assistant":
            segments += [(message["content"] + "<|im_end|>", True), ("\n", False)]
        else:
            segments.append((message["content"] + "<|im_end|>\n", False))
    if add_generation_prompt:
        segments.append(("<|im_start|>assistant\n", False))
    return segments


def _llama3(messages, add_generation_prompt):
    segments = [("<|begin_of_text|>", False)]
    for message in messages:
        segments.append((f"<|start_header_id|>{message['role']}<|end_header_id|>\n\n", False))
        segments.append((message["content"].strip() + "<|eot_id|>",
                         message["role"] == "assistant"))
    if add_generation_prompt:
        segments.append(("<|start_header_id|>assistant<|end_header_id|>\n\n", False))
    return segments


def _llama2(messages, add_generation_prompt):
    """<s>[INST] user [/INST] answer </s><s>[INST] ..., the system message folded into the
    first user turn between <<SYS>> markers, as Meta's chat format does."""
    system = None
    if messages[0]["role"] == "system":
        system, messages = messages[0]["content"], messages[1:]
    segments = []
    for index, message in enumerate(messages):
        expected = "user" if index % 2 == 0 else "assistant"
        if message["role"] != expected:
            raise ValueError("the LLaMA 2 format needs user and assistant turns to alternate, "
                             "starting with the user")
        if expected == "user":
            content = message["content"]
            if index == 0 and system is not None:
                content = f"<<SYS>>\n{system}\n<</SYS>>\n\n{content}"
            segments.append((f"<s>[INST] {content.strip()} [/INST]", False))
        else:
            segments.append((f" {message['content'].strip()} </s>", True))
    return segments  # the generation prompt is the [/INST] that ends a user turn


def _zephyr(messages, add_generation_prompt):
    segments = []
    for message in messages:
        segments.append((f"<|{message['role']}|>\n", False))
        if message["role"] == "assistant":
            segments += [(message["content"] + "</s>", True), ("\n", False)]
        else:
            segments.append((message["content"] + "</s>\n", False))
    if add_generation_prompt:
        segments.append(("<|assistant|>\n", False))
    return segments


RENDERERS = {"chatml": _chatml, "llama3": _llama3, "llama2": _llama2, "zephyr": _zephyr}


def tokenizer_chat_format(tokenizer, chat_format=None):
    """(format name, default system prompt) for a tokenizer with a chat_template."""
    template = getattr(tokenizer, "chat_template", None)
    name = chat_format or detect_chat_format(template)
    return name, default_system_prompt(template, name)


def encode_chat_text(text, tokenizer):
    """Token ids of rendered chat text, its special-token names as their special ids."""
    special = getattr(tokenizer, "special_tokens", None)
    if special is not None:
        return tokenizer.encode(text, allowed_special="all")
    # llama2.c's tokenizer has <s> and </s> (ids 1 and 2) and no other special tokens.
    ids = []
    for index, part in enumerate(re.split(r"(<s>|</s>)", text)):
        if index % 2:
            ids.append(tokenizer.bos_id if part == "<s>" else tokenizer.eos_id)
        elif part:
            ids.extend(tokenizer.encode(part))
    return ids


def chat_prompt(messages, tokenizer, add_generation_prompt=True, chat_format=None):
    """The token ids of `messages` in the tokenizer's chat format, ending with the
    assistant's header (ready for tl.generate) unless add_generation_prompt is False.
    The template's default system prompt is inserted when there is no system message."""
    name, system = tokenizer_chat_format(tokenizer, chat_format)
    segments = render_segments(messages, name, add_generation_prompt, system)
    return encode_chat_text("".join(text for text, _ in segments), tokenizer)


def end_of_turn_id(tokenizer, chat_format):
    """The id of the token that ends an assistant turn in `chat_format`."""
    ids = encode_chat_text(END_OF_TURN[chat_format], tokenizer)
    if len(ids) != 1:
        raise ValueError(f"the tokenizer has no single token for {END_OF_TURN[chat_format]!r}, "
                         f"which ends a turn in the {chat_format} format")
    return ids[0]
