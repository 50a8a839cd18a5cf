"""Generation: the KV cache gives the same logits as re-reading everything, every strategy
chooses what it should, and bad arguments are clear errors."""

import itertools

import numpy as np
import pytest

import tinyllama_np as tl
from tinyllama_np.generation.beam_search import beam_search
from tinyllama_np.generation.generate import Decoder
from tinyllama_np.generation.sampling import (apply_repetition_penalty, next_token_probs, sample,
                                   top_k_filter, top_p_filter)


def make_model(seed=2, dtype=np.float64, **overrides):
    """A small LLaMA whose weights are large enough for peaked, position-dependent logits."""
    settings = dict(vocab_size=29, dim=24, n_layers=2, n_heads=4, n_kv_heads=2,
                    hidden_dim=40, max_seq_len=24)
    settings.update(overrides)
    model = tl.Llama(tl.LlamaConfig(**settings), seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 100)
    for param in model.params.values():
        if param.ndim == 1:
            param[...] = 1 + 0.2 * rng.standard_normal(param.shape)
        else:
            param[...] = rng.standard_normal(param.shape) / np.sqrt(param.shape[1])
    return model


def bigram_llama(probs):
    """A real Llama built by hand to be a bigram table: next-token probabilities probs[token].

    The blocks are switched off (wo = w2 = 0: each adds nothing to the residual stream),
    the embedding is one-hot, the final RMSNorm's weight undoes its own scaling, and column
    t of the output matrix holds log probs[t]. So logits(after token t) = log probs[t].
    """
    vocab_size = probs.shape[0]
    dim = vocab_size + vocab_size % 2  # an even head dimension for RoPE
    config = tl.LlamaConfig(vocab_size=vocab_size, dim=dim, n_layers=1, n_heads=1,
                            hidden_dim=4, max_seq_len=16)
    model = tl.Llama(config, dtype=np.float64)
    model.params["layers.0.attention.wo.weight"][...] = 0
    model.params["layers.0.feed_forward.w2.weight"][...] = 0
    model.params["tok_embeddings.weight"][...] = np.eye(vocab_size, dim)
    model.params["norm.weight"][...] = np.sqrt(1.0 / dim + config.norm_eps)
    model.params["output.weight"][...] = 0
    model.params["output.weight"][:, :vocab_size] = np.log(probs).T
    return model


def sequence_log_prob(model, prompt, new_ids):
    logits = model.forward(np.array([list(prompt) + list(new_ids)]))[0]
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return sum(log_probs[len(prompt) - 1 + i, t] for i, t in enumerate(new_ids))


# ----- KV cache -----

CACHE_CONFIGS = {
    "mha": dict(n_heads=4, n_kv_heads=4),
    "gqa": dict(n_heads=6, n_kv_heads=2, dim=36),
    "tied": dict(tie_embeddings=True, n_kv_heads=1),
}


@pytest.mark.parametrize("name", CACHE_CONFIGS)
def test_cached_logits_equal_full_recomputation(name):
    model = make_model(**CACHE_CONFIGS[name])
    c = model.config
    tokens = np.random.default_rng(5).integers(0, c.vocab_size, size=(2, 13))
    full = model.forward(tokens)

    cache = tl.KVCache(c, batch_size=2, dtype=np.float64)
    assert cache.keys[0].shape == (2, c.max_seq_len, c.n_kv_heads, c.head_dim)  # GQA-sized
    pieces = [model.forward(tokens[:, :5], cache=cache)]  # prefill
    for position in range(5, 10):  # one token per step
        pieces.append(model.forward(tokens[:, position:position + 1], cache=cache))
    pieces.append(model.forward(tokens[:, 10:13], cache=cache))  # several, mid-text
    assert cache.length == 13
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, rtol=0, atol=1e-10)
    assert np.abs(full).max() > 1  # logits large enough that a wrong cache would show


def test_cache_reorder_moves_rows():
    model = make_model()
    tokens = np.random.default_rng(6).integers(0, 29, size=(3, 6))
    cache = tl.KVCache(model.config, batch_size=3, dtype=np.float64)
    model.forward(tokens[:, :5], cache=cache)
    rows = [2, 2, 0, 1]  # rows may repeat, and their number may change
    cache.reorder(rows)
    last = model.forward(tokens[rows, 5:6], cache=cache)
    np.testing.assert_allclose(last[:, 0], model.forward(tokens[rows])[:, -1], rtol=0, atol=1e-10)


def test_cache_bad_use_is_a_clear_error():
    model = make_model()
    cache = tl.KVCache(model.config, batch_size=1, dtype=np.float64, max_len=4)
    with pytest.raises(ValueError, match="batch size"):
        model.forward(np.zeros((2, 2), int), cache=cache)
    with pytest.raises(ValueError, match="attention_mask"):
        model.forward(np.zeros((1, 2), int), np.ones((1, 2), bool), cache=cache)
    model.forward(np.zeros((1, 3), int), cache=cache)
    with pytest.raises(ValueError, match="room for 4 positions"):
        model.forward(np.zeros((1, 2), int), cache=cache)
    with pytest.raises(ValueError, match="max_len"):
        tl.KVCache(model.config, max_len=model.config.max_seq_len + 1)
    with pytest.raises(ValueError, match="generation only"):
        model.backward(np.ones((1, 1, model.config.vocab_size)))


def test_generation_with_and_without_cache_agree():
    model = make_model()
    for options in [dict(temperature=0), dict(seed=3, top_k=5), dict(num_beams=3)]:
        cached = tl.generate(model, [1, 2, 3], 12, **options)
        uncached = tl.generate(model, [1, 2, 3], 12, use_cache=False, **options)
        assert cached == uncached, options


def test_cached_decoding_reads_one_token_per_step():
    model = make_model()
    shapes = []
    forward = model.forward
    model.forward = lambda tokens, *args, **kwargs: (shapes.append(np.shape(tokens)),
                                                     forward(tokens, *args, **kwargs))[1]
    stream = tl.generate_stream(model, [4, 5, 6, 7], 5, temperature=0)
    assert shapes == []  # nothing runs before the first token is asked for
    next(stream)
    assert shapes == [(1, 4)]  # the prompt, read once
    rest = list(stream)
    assert len(rest) == 4 and shapes[1:] == [(1, 1)] * 4  # no wasted step after the last


# ----- greedy and sampling -----

def test_greedy_is_the_argmax_chain():
    model = make_model()
    ids = [3, 1, 4]
    expected = []
    for _ in range(10):
        expected.append(int(np.argmax(model.forward(np.array([ids + expected]))[0, -1])))
    assert tl.generate(model, ids, 10, temperature=0) == expected
    assert len(set(expected)) > 1  # a chain that actually moves


def test_same_seed_same_output_and_streaming_matches():
    model = make_model(dtype=np.float32)
    first = tl.generate(model, [1, 2], 15, seed=42, top_p=0.95)
    assert tl.generate(model, [1, 2], 15, seed=42, top_p=0.95) == first
    assert list(tl.generate_stream(model, [1, 2], 15, seed=42, top_p=0.95)) == first
    others = {tuple(tl.generate(model, [1, 2], 15, seed=seed, top_p=0.95)) for seed in range(5)}
    assert len(others) > 1  # the seed matters


def test_top_k_and_top_p_keep_the_right_tokens():
    probs = np.array([0.05, 0.4, 0.1, 0.25, 0.2])
    kept = top_k_filter(probs, 2)
    np.testing.assert_allclose(kept, [0, 0.4 / 0.65, 0, 0.25 / 0.65, 0])
    # Sorted: 0.4, 0.25, 0.2, ... -> running totals 0.4, 0.65, 0.85: p = 0.6 needs two
    # tokens, p = 0.65 still two (it is reached exactly), p = 0.66 three.
    assert np.flatnonzero(top_p_filter(probs, 0.6)).tolist() == [1, 3]
    assert np.flatnonzero(top_p_filter(probs, 0.65 - 1e-12)).tolist() == [1, 3]
    assert np.flatnonzero(top_p_filter(probs, 0.66)).tolist() == [1, 3, 4]
    assert np.flatnonzero(top_p_filter(probs, 0.01)).tolist() == [1]  # at least one
    assert np.count_nonzero(top_p_filter(probs, 1.0)) == 5
    np.testing.assert_allclose(top_p_filter(probs, 0.8).sum(), 1.0)
    # Together: top-k first, then the nucleus of the renormalised top-k distribution.
    logits = np.log(probs)
    combined = next_token_probs(logits, top_k=3, top_p=0.7)
    assert np.flatnonzero(combined).tolist() == [1, 3]  # 0.4/0.85 = 0.47 < 0.7 <= 0.76
    # Temperature: T -> small sharpens, T large flattens.
    assert next_token_probs(logits, temperature=0.1).max() > 0.99
    assert next_token_probs(logits, temperature=100.0).max() < 0.21
    tiny = next_token_probs(logits.astype(np.float32), temperature=1e-42)  # no overflow
    assert tiny.dtype == np.float32 and tiny.tolist() == [0, 1, 0, 0, 0]


def test_top_p_keeps_a_large_vocabulary_right():
    # The pre-filter that skips hopeless tokens must not change the answer.
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(3000, 0.3))
    for p in [0.1, 0.5, 0.9, 0.999]:
        order = np.argsort(-probs)
        n_kept = np.searchsorted(np.cumsum(probs[order]), p) + 1
        assert set(np.flatnonzero(top_p_filter(probs, p))) == set(order[:n_kept])


def test_sampling_follows_the_distribution():
    probs = np.array([0.1, 0.0, 0.6, 0.3], np.float32)
    rng = np.random.default_rng(0)
    counts = np.bincount([sample(probs, rng) for _ in range(4000)], minlength=4)
    assert counts[1] == 0
    np.testing.assert_allclose(counts / 4000, probs, atol=0.03)


def test_sampled_tokens_stay_inside_top_k_and_top_p():
    model = make_model()
    logits = model.forward(np.array([[1, 2, 3]]))[0, -1]
    order = np.argsort(-logits)
    draws = {tl.generate(model, [1, 2, 3], 1, top_k=4, seed=seed)[0] for seed in range(300)}
    assert draws == set(order[:4].tolist())
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    nucleus = order[:np.searchsorted(np.cumsum(probs[order]), 0.7) + 1]
    draws = {tl.generate(model, [1, 2, 3], 1, top_p=0.7, seed=seed)[0] for seed in range(300)}
    assert len(nucleus) > 1 and draws == set(nucleus.tolist())


def test_repetition_penalty():
    logits = np.array([2.0, -1.0, 0.5, 3.0])
    penalised = apply_repetition_penalty(logits, [0, 1, 1], 2.0)
    np.testing.assert_allclose(penalised, [1.0, -2.0, 0.5, 3.0])
    assert logits[0] == 2.0  # the caller's array is left alone
    model = make_model()
    plain = tl.generate(model, [1], 20, temperature=0)
    penalised = tl.generate(model, [1], 20, temperature=0, repetition_penalty=5.0)
    assert len(set(penalised)) > len(set(plain))


def test_eos_stops_generation_and_is_returned():
    model = make_model()
    greedy = tl.generate(model, [1, 2], 12, temperature=0)
    eos = greedy[4]
    stop = greedy.index(eos)
    assert tl.generate(model, [1, 2], 12, temperature=0, eos_id=eos) == greedy[:stop + 1]


def test_zero_new_tokens():
    assert tl.generate(make_model(), [1], 0) == []
    assert tl.generate(make_model(), [1], 0, num_beams=2) == []


# ----- beam search -----

# A hand-built bigram model. Vocabulary: 0 start, 1 A, 2 B, 3 C, 4 D, 5 EOS.
# After start, A (0.5) beats B (0.4), but nothing follows A with more than 0.25,
# while C follows B with 0.9: the best two-token text is B C (0.36), and greedy,
# committed to A, reaches only 0.5 * 0.25 = 0.125.
BIGRAM = np.array([
    # start  A     B     C     D     EOS
    [0.01, 0.50, 0.40, 0.04, 0.04, 0.01],  # after start
    [0.15, 0.25, 0.25, 0.15, 0.15, 0.05],  # after A
    [0.02, 0.02, 0.02, 0.90, 0.02, 0.02],  # after B
    [0.10, 0.10, 0.10, 0.10, 0.50, 0.10],  # after C
    [0.10, 0.10, 0.10, 0.10, 0.10, 0.50],  # after D
    [0.20, 0.20, 0.20, 0.20, 0.10, 0.10],  # after EOS
])


def test_bigram_llama_is_the_table():
    model = bigram_llama(BIGRAM)
    logits = model.forward(np.array([[0, 2, 3]]))[0]
    np.testing.assert_allclose(np.exp(logits), BIGRAM[[0, 2, 3]], rtol=1e-9)


def test_beam_search_finds_what_greedy_misses():
    model = bigram_llama(BIGRAM)
    greedy = tl.generate(model, [0], 2, temperature=0)
    beam = tl.generate(model, [0], 2, num_beams=2)
    assert greedy[0] == 1 and beam == [2, 3]
    assert sequence_log_prob(model, [0], beam) > sequence_log_prob(model, [0], greedy)
    best = max(itertools.product(range(6), repeat=2),
               key=lambda ids: sequence_log_prob(model, [0], ids))
    assert list(best) == beam
    assert beam_search(Decoder(model, [0], 2), 2, num_beams=1) == greedy  # one beam: greedy


def test_beam_search_keeps_finished_beams_and_normalises_length():
    model = bigram_llama(BIGRAM)
    # B C D EOS: log(0.4 * 0.9 * 0.5 * 0.5) / 4 = -0.58 per token, the best mean of any
    # text that ends with EOS. It finishes at step 4 and is kept while the search runs on,
    # until no running beam can reach a better mean within max_new_tokens.
    history = []
    decoder = Decoder(model, [0], 8)
    best = beam_search(decoder, 8, num_beams=3, eos_id=5, history=history)
    assert best == [2, 3, 4, 5]
    assert all(5 not in ids for step in history for ids, _ in step)  # EOS never runs on
    assert all(len(step) == 3 for step in history)  # a finished beam leaves room for another
    assert len(history) < 8  # stopped once no running beam could beat B C D EOS
    assert tl.generate(model, [0], 8, num_beams=3, eos_id=5) == best
    # Without eos_id, token 5 is a token like any other: every text runs to the end.
    no_eos = tl.generate(model, [0], 8, num_beams=3)
    assert len(no_eos) == 8
    assert sequence_log_prob(model, [0], no_eos) >= sequence_log_prob(
        model, [0], tl.generate(model, [0], 8, temperature=0))


def test_beam_search_with_enough_beams_is_exhaustive():
    # With vocab_size ** (steps - 1) beams nothing is ever pruned: the result must be the
    # most probable text of all, found here by brute force on a random LLaMA.
    model = make_model(vocab_size=5, seed=7)
    prompt = [1, 3]
    best = max(itertools.product(range(5), repeat=3),
               key=lambda ids: sequence_log_prob(model, prompt, ids))
    assert tl.generate(model, prompt, 3, num_beams=25) == list(best)


# ----- bad input -----

@pytest.mark.parametrize("arguments, message", [
    (dict(prompt_ids=[]), "empty"),
    (dict(prompt_ids=[[1, 2]]), "flat list"),
    (dict(prompt_ids=[1.5]), "integers"),
    (dict(prompt_ids=[29]), "out of range"),
    (dict(prompt_ids=[-1]), "out of range"),
    (dict(prompt_ids=[1] * 25), "more than the model's context"),
    (dict(max_new_tokens=23), "at most 22 new tokens fit"),
    (dict(max_new_tokens=-1), "max_new_tokens"),
    (dict(max_new_tokens=2.0), "max_new_tokens"),
    (dict(temperature=-0.5), "temperature"),
    (dict(temperature=float("nan")), "temperature"),
    (dict(top_k=0), "top_k"),
    (dict(top_k=2.5), "top_k"),
    (dict(top_p=0.0), "top_p"),
    (dict(top_p=1.5), "top_p"),
    (dict(top_p=-0.1), "top_p"),
    (dict(num_beams=0), "num_beams"),
    (dict(num_beams=3, top_k=5), "beam search"),
    (dict(num_beams=3, temperature=0), "beam search"),
    (dict(eos_id=29), "eos_id"),
    (dict(repetition_penalty=0.0), "repetition_penalty"),
    (dict(seed="abc"), "seed"),
])
def test_bad_arguments_are_clear_errors(arguments, message):
    model = make_model()
    call = dict(prompt_ids=[1, 2], max_new_tokens=5)
    call.update(arguments)
    with pytest.raises(ValueError, match=message):
        tl.generate(model, call.pop("prompt_ids"), call.pop("max_new_tokens"), **call)
    with pytest.raises(ValueError, match=message):  # checked at the call, not at next()
        tl.generate_stream(model, [1, 2] if "prompt_ids" not in arguments
                           else arguments["prompt_ids"],
                           arguments.get("max_new_tokens", 5),
                           **{k: v for k, v in arguments.items()
                              if k not in ("prompt_ids", "max_new_tokens")})


def test_generation_may_fill_the_context_exactly():
    model = make_model()
    assert len(tl.generate(model, [1, 2], 22, temperature=0)) == 22
    assert len(tl.generate(model, [1, 2], 22, num_beams=2)) == 22
