"""From next-token logits to one chosen token (seed chapter 3.3, 生成策略).

The model gives a score (logit) for every token of the vocabulary. A decoding strategy
turns those scores into a choice:

    logits -> repetition penalty -> / temperature -> softmax -> top-k -> top-p -> sample
    temperature 0: skip the rest and take the argmax (greedy search, 贪婪搜索, 3.3.1)

* temperature T divides the logits before the softmax: T < 1 sharpens the distribution
  (T -> 0 is greedy), T > 1 flattens it (T -> infinity is uniform).
* top-k (顶端采样, 3.3.3) keeps the k most probable tokens.
* top-p (核采样 / nucleus sampling, 3.3.4) keeps the smallest set of most probable tokens
  whose probabilities add up to at least p. Unlike top-k, the set adapts: a confident
  model keeps a handful of tokens, an unsure one keeps many.
Both renormalise what they keep; applied together, top-k comes first.

Beam search (束搜索, 3.3.2) keeps several candidate texts instead of choosing one token:
see beam_search.py.
"""

import numpy as np


def apply_repetition_penalty(logits, previous_ids, penalty):
    """Make tokens already in the text less likely (the CTRL paper's rule, penalty > 1):
    a positive logit is divided by the penalty, a negative one multiplied.

    logits (vocab_size,); returns a new array (the same one when the penalty is 1)."""
    if penalty == 1.0 or len(previous_ids) == 0:
        return logits
    logits = logits.copy()
    seen = np.unique(np.asarray(previous_ids))
    scores = logits[seen]
    logits[seen] = np.where(scores > 0, scores / penalty, scores * penalty)
    return logits


def softmax(logits):
    exps = np.exp(logits - np.max(logits))
    return exps / np.sum(exps)


def keep_at_least(probs, threshold):
    """Zero the probabilities below threshold and renormalise the rest."""
    kept = np.where(probs >= threshold, probs, 0)
    kept /= np.sum(kept)
    return kept


def top_k_filter(probs, k):
    """Keep the k largest probabilities (and any that tie with the k-th); renormalise."""
    if k >= probs.size:
        return probs
    kth_largest = np.partition(probs, probs.size - k)[probs.size - k]
    return keep_at_least(probs, kth_largest)


def top_p_filter(probs, p):
    """Keep the smallest set of most probable tokens whose total is at least p (and any that
    tie with the last one kept); renormalise."""
    # Only tokens that could be in the nucleus need sorting. A token below
    # (1 - p) / (V - 1) never is: to need it, the tokens from it down would have to hold
    # more than 1 - p, yet there are at most V - 1 of them, each no larger than it.
    candidates = probs[probs >= (1.0 - p) / max(probs.size - 1, 1)]
    if candidates.size == 0:  # only possible when p is tiny: the top token alone suffices
        return keep_at_least(probs, np.max(probs))
    descending = np.sort(candidates)[::-1]
    cumulative = np.cumsum(descending)
    # The first position where the running total reaches p, included (at least one token).
    last = min(int(np.searchsorted(cumulative, p)), descending.size - 1)
    return keep_at_least(probs, descending[last])


def next_token_probs(logits, temperature=1.0, top_k=None, top_p=None):
    """The distribution a sampler draws from: softmax(logits / T), then top-k, then top-p.

    logits: (vocab_size,). temperature must be > 0 here (0, greedy, needs no distribution).
    """
    # Shift first, so the largest logit is 0: with a tiny temperature the others then go
    # to -inf (probability 0, as intended), never to inf - inf = nan.
    with np.errstate(over="ignore"):
        probs = softmax((logits - np.max(logits)) / float(temperature))
    if top_k is not None:
        probs = top_k_filter(probs, top_k)
    if top_p is not None and top_p < 1.0:
        probs = top_p_filter(probs, top_p)
    return probs


def sample(probs, rng):
    """Draw one token id: u uniform in [0, total), then the first token whose cumulative
    probability exceeds u (inverse transform sampling). Tokens of probability 0 never win."""
    cumulative = np.cumsum(probs)
    u = rng.random() * float(cumulative[-1])
    index = int(np.searchsorted(cumulative, u, side="right"))
    if index == probs.size:  # u rounded up to the total: take the last possible token
        index = int(np.flatnonzero(probs)[-1])
    return index


def choose_token(logits, previous_ids, rng, temperature=1.0, top_k=None, top_p=None,
                 repetition_penalty=1.0):
    """One decoding step for one sequence: logits (vocab_size,) -> a token id."""
    logits = apply_repetition_penalty(logits, previous_ids, repetition_penalty)
    if temperature == 0:
        return int(np.argmax(logits))
    return sample(next_token_probs(logits, temperature, top_k, top_p), rng)
