"""Text generation: run the model one token at a time (seed chapter 3.3, 生成策略).

    tl.generate(model, prompt_ids, 50)                          sampling, temperature 1
    tl.generate(model, prompt_ids, 50, temperature=0)           greedy search
    tl.generate(model, prompt_ids, 50, top_k=40, top_p=0.9)     top-k, then nucleus
    tl.generate(model, prompt_ids, 50, num_beams=4)             beam search
    for token in tl.generate_stream(model, prompt_ids, 50): ... each token as it is chosen

A language model only ever predicts the NEXT token. Generating is a loop: predict, choose
a token (sampling.py; beam_search.py), append it, predict again. With the KV cache
(kv_cache.py) the prompt is read once ("prefill") and then each step reads only the one
new token; without it, each step re-reads the whole text (use_cache=False, to compare).
"""

import numbers

import numpy as np

from .beam_search import beam_search
from .kv_cache import KVCache
from .sampling import choose_token


class Decoder:
    """Next-token logits for texts that share a prompt, computed with or without a KV cache.

        start()                 reads the prompt -> logits (1, vocab_size) for the next token
        step(tokens, parents)   text i becomes old text parents[i] + tokens[i] (parents
                                None: each text continues itself) -> logits (len(tokens), V)

    `sequences` (texts, length) holds every text so far, prompt included.
    """

    def __init__(self, model, prompt_ids, max_new_tokens, use_cache=True):
        self.model = model
        self.sequences = np.asarray(prompt_ids).reshape(1, -1)
        room = self.sequences.shape[1] + max_new_tokens
        self.cache = KVCache(model.config, 1, model.dtype, max_len=room) if use_cache else None

    def start(self):
        return self.model.forward(self.sequences, cache=self.cache, positions=self.last_positions())

    def last_positions(self):
        """Each text's last position: the only logits generation needs (the classifier is
        the largest matrix product; a prompt's other positions would only waste it)."""
        rows, length = self.sequences.shape
        return np.arange(rows), np.full(rows, length - 1)

    def step(self, tokens, parents=None):
        tokens = np.asarray(tokens).reshape(-1, 1)
        if parents is not None:
            self.sequences = self.sequences[parents]
            if self.cache is not None:
                self.cache.reorder(parents)
        self.sequences = np.concatenate([self.sequences, tokens], axis=1)
        if self.cache is None:
            # re-read everything
            return self.model.forward(self.sequences, positions=self.last_positions())
        return self.model.forward(tokens, cache=self.cache)[:, -1]  # read the new token only


def generate(model, prompt_ids, max_new_tokens, *, temperature=1.0, top_k=None, top_p=None,
             num_beams=1, seed=None, eos_id=None, use_cache=True, repetition_penalty=1.0):
    """Continue `prompt_ids` by up to max_new_tokens tokens; returns the new ids only.

    temperature: 0 is greedy search; otherwise sample from softmax(logits / temperature),
        cut to the top_k most probable tokens, then to the nucleus of mass top_p.
    num_beams > 1: beam search (deterministic; temperature, top_k, top_p do not apply).
    seed: the sampler's random seed (same seed, same output).
    eos_id: stop once this token is chosen (it is included in the result).
    repetition_penalty > 1 makes tokens already in the text less likely.
    The prompt plus the new tokens must fit in model.config.max_seq_len (else ValueError);
    an empty prompt is an error too: pass [bos_id] to generate from nothing.
    """
    return list(generate_stream(model, prompt_ids, max_new_tokens, temperature=temperature,
                                top_k=top_k, top_p=top_p, num_beams=num_beams, seed=seed,
                                eos_id=eos_id, use_cache=use_cache,
                                repetition_penalty=repetition_penalty))


def generate_stream(model, prompt_ids, max_new_tokens, *, temperature=1.0, top_k=None,
                    top_p=None, num_beams=1, seed=None, eos_id=None, use_cache=True,
                    repetition_penalty=1.0):
    """Like generate(), but an iterator that yields each new token id as soon as it is chosen.

    Beam search only knows its best text at the end: its tokens all come then.
    Arguments are checked at the call, not at the first next().
    """
    prompt_ids = check_generate_arguments(model, prompt_ids, max_new_tokens, temperature, top_k,
                                          top_p, num_beams, seed, eos_id, repetition_penalty)
    decoder = Decoder(model, prompt_ids, max_new_tokens, use_cache)
    if num_beams > 1:
        return _beam_stream(decoder, max_new_tokens, num_beams, eos_id, repetition_penalty)
    return _sampling_stream(decoder, max_new_tokens, np.random.default_rng(seed), eos_id,
                            dict(temperature=temperature, top_k=top_k, top_p=top_p,
                                 repetition_penalty=repetition_penalty))


def _sampling_stream(decoder, max_new_tokens, rng, eos_id, options):
    if max_new_tokens == 0:
        return
    logits = decoder.start()
    for step in range(max_new_tokens):
        token = choose_token(logits[0], decoder.sequences[0], rng, **options)
        yield token
        if token == eos_id or step == max_new_tokens - 1:
            return
        logits = decoder.step([token])


def _beam_stream(decoder, max_new_tokens, num_beams, eos_id, repetition_penalty):
    yield from beam_search(decoder, max_new_tokens, num_beams, eos_id, repetition_penalty)


def _is_integer(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_generate_arguments(model, prompt_ids, max_new_tokens, temperature, top_k, top_p,
                             num_beams, seed, eos_id, repetition_penalty):
    """Every argument of generate(), checked; returns the prompt as a 1-D int array."""
    config = model.config
    prompt = np.asarray(prompt_ids)
    if prompt.ndim != 1:
        raise ValueError(f"prompt_ids must be a flat list of token ids, got shape {prompt.shape}")
    if prompt.size == 0:
        raise ValueError("prompt_ids is empty: the model needs at least one token to condition "
                         "on; start from the BOS token, e.g. [tokenizer.bos_id]")
    if not np.issubdtype(prompt.dtype, np.integer):
        raise ValueError(f"prompt_ids must be integers, got dtype {prompt.dtype}")
    if prompt.min() < 0 or prompt.max() >= config.vocab_size:
        bad = prompt[(prompt < 0) | (prompt >= config.vocab_size)][0]
        raise ValueError(f"prompt token id {bad} is out of range [0, {config.vocab_size})")
    if prompt.size > config.max_seq_len:
        raise ValueError(f"the prompt has {prompt.size} tokens, more than the model's "
                         f"context (max_seq_len={config.max_seq_len})")
    if not _is_integer(max_new_tokens) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
    if prompt.size + max_new_tokens > config.max_seq_len:
        raise ValueError(f"the prompt ({prompt.size} tokens) plus max_new_tokens "
                         f"({max_new_tokens}) exceed the model's context "
                         f"(max_seq_len={config.max_seq_len}): at most "
                         f"{config.max_seq_len - prompt.size} new tokens fit")
    if not isinstance(temperature, numbers.Real) or not 0 <= temperature < float("inf"):
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), "
                         f"got {temperature!r}")
    if top_k is not None and (not _is_integer(top_k) or top_k < 1):
        raise ValueError(f"top_k must be an integer >= 1 (or None), got {top_k!r}")
    if top_p is not None and (not isinstance(top_p, numbers.Real) or not 0 < top_p <= 1):
        raise ValueError(f"top_p must lie in (0, 1] (or be None), got {top_p!r}")
    if not _is_integer(num_beams) or num_beams < 1:
        raise ValueError(f"num_beams must be an integer >= 1, got {num_beams!r}")
    if num_beams > 1 and (temperature != 1.0 or top_k is not None or top_p is not None):
        raise ValueError("beam search (num_beams > 1) does not sample: leave temperature, "
                         "top_k and top_p at their defaults")
    if seed is not None and not _is_integer(seed):
        raise ValueError(f"seed must be an integer (or None), got {seed!r}")
    if eos_id is not None and (not _is_integer(eos_id) or not 0 <= eos_id < config.vocab_size):
        raise ValueError(f"eos_id must be a token id in [0, {config.vocab_size}), got {eos_id!r}")
    if (not isinstance(repetition_penalty, numbers.Real)
            or not 0 < repetition_penalty < float("inf")):
        raise ValueError(f"repetition_penalty must be a finite number > 0 (1 = none), "
                         f"got {repetition_penalty!r}")
    return prompt
