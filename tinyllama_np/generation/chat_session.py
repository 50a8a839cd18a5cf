"""A multi-turn conversation with one KV cache that lives across the turns.

Each turn renders the whole conversation again (chat.py), but only the tokens the cache
does not already hold are run through the model: the rendering of turn n+1 starts with the
rendering of turn n, so usually that is just the new user message and the assistant header.
Where the new ids and the cached ones first differ (a re-tokenised answer may split
differently from the tokens that were generated), the cache is cut back to that point:
with causal attention the positions before it are unaffected.

When the conversation no longer fits in the context, the oldest turns (after the system
message) are dropped, and the cache is rebuilt from the shortened text.
"""

import numpy as np

from .chat import chat_prompt, end_of_turn_id, tokenizer_chat_format
from .kv_cache import KVCache
from .sampling import choose_token


class ChatSession:
    def __init__(self, model, tokenizer, system=None, chat_format=None, context=2048,
                 max_new_tokens=256, temperature=0.0, top_k=None, top_p=None, seed=None,
                 repetition_penalty=1.0):
        self.model, self.tokenizer = model, tokenizer
        self.chat_format, _ = tokenizer_chat_format(tokenizer, chat_format)
        self.end_id = end_of_turn_id(tokenizer, self.chat_format)
        self.context = min(context, model.config.max_seq_len)
        if max_new_tokens >= self.context:
            raise ValueError(f"max_new_tokens ({max_new_tokens}) must be smaller than the "
                             f"context ({self.context})")
        self.max_new_tokens = max_new_tokens
        self.options = dict(temperature=temperature, top_k=top_k, top_p=top_p,
                            repetition_penalty=repetition_penalty)
        self.rng = np.random.default_rng(seed)
        self.messages = [] if system is None else [{"role": "system", "content": system}]
        self.cache = KVCache(model.config, 1, model.dtype, max_len=self.context)
        self.cached_ids = []  # the tokens whose keys and values the cache holds

    def prompt_ids(self):
        """The conversation's ids; the oldest turns dropped while it does not fit.
        Returns (ids, number of messages dropped)."""
        dropped = 0
        while True:
            ids = chat_prompt(self.messages, self.tokenizer, chat_format=self.chat_format)
            if len(ids) + self.max_new_tokens <= self.context:
                return ids, dropped
            first = 1 if self.messages[0]["role"] == "system" else 0
            if len(self.messages) - first <= 1:
                raise ValueError(f"the message is {len(ids)} tokens long: with room for "
                                 f"{self.max_new_tokens} new tokens it does not fit in the "
                                 f"context of {self.context}")
            del self.messages[first:first + 2]  # one user turn and its answer
            dropped += 2

    def reply(self, user_text):
        """Yield the ids of the answer to `user_text` as they are chosen (without the
        end-of-turn token). Closing the generator early (Ctrl-C) keeps what was said."""
        self.messages.append({"role": "user", "content": user_text})
        ids, self.dropped = self.prompt_ids()
        common = 0
        for old, new in zip(self.cached_ids, ids):
            if old != new:
                break
            common += 1
        common = min(common, len(ids) - 1)  # the last prompt token must run: its logits
        self.cache.length = common
        self.cached_ids = ids[:common]
        logits = self._run(ids[common:])
        answer = []
        try:
            for step in range(self.max_new_tokens):
                token = choose_token(logits, np.array(ids + answer), self.rng, **self.options)
                if token == self.end_id:
                    break
                answer.append(token)
                yield token
                if step < self.max_new_tokens - 1:  # no forward pass for a token never used
                    logits = self._run([token])
        finally:
            self.messages.append({"role": "assistant",
                                  "content": self.tokenizer.decode(answer)})

    def _run(self, new_ids):
        last = (np.array([0]), np.array([len(new_ids) - 1]))  # the next token's logits only
        logits = self.model.forward(np.array([new_ids]), cache=self.cache, positions=last)
        self.cached_ids = self.cached_ids + list(new_ids)
        return logits[0]
