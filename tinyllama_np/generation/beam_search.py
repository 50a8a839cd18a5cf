"""Beam search (束搜索, seed chapter 3.3.2): keep the num_beams best partial texts, not one.

Greedy search commits to the most probable token at every step, and can miss a text whose
first token is less likely but whose continuation is far more likely. Beam search keeps
num_beams candidates ("beams"), scored by the sum of their tokens' log-probabilities
(the log of the text's probability):

    every step: extend every beam by every token       num_beams x vocab_size candidates
                keep the num_beams best candidates     (a beam may spawn several, or none)

* A beam that produces EOS is finished: it leaves the search but is kept, and competes at
  the end with the beams still running.
* Length normalisation: every extra token multiplies the probability by a number <= 1, so
  raw scores favour short texts. Finished texts are compared by their MEAN log-probability
  per new token instead.
* The search stops after max_new_tokens steps, or as soon as no running beam can still
  beat the best finished text (its total can only fall; at best it is spread over
  max_new_tokens tokens).
num_beams = 1 is greedy search.
"""

import numpy as np

from .sampling import apply_repetition_penalty


def log_softmax(logits):
    shifted = logits - np.max(logits, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def beam_search(decoder, max_new_tokens, num_beams, eos_id=None, repetition_penalty=1.0,
                history=None):
    """The new ids of the best text found (ending with eos_id if it finished).

    decoder: a Decoder (generate.py) holding the prompt.
    history: optional list; each step appends the running beams as
             [(new ids, summed log-prob), ...], best first, for printing the search tree.
    """
    if max_new_tokens == 0:
        return []
    logits = decoder.start()  # (1, vocab_size): one row until the first step branches
    beams = [[]]  # the new ids of each running beam
    scores = np.zeros(1)  # each running beam's summed log-probability (float64)
    finished = []  # (mean log-prob per token, ids) of the beams that ended with EOS
    for step in range(max_new_tokens):
        for row in range(len(beams)):
            logits[row] = apply_repetition_penalty(logits[row], decoder.sequences[row],
                                                   repetition_penalty)
        candidates = scores[:, None] + log_softmax(logits)  # (beams, vocab_size)
        # Take twice num_beams, so num_beams still run even if some of them end with EOS.
        n_best = min(2 * num_beams, candidates.size)
        best = np.argpartition(-candidates, n_best - 1, axis=None)[:n_best]
        best = best[np.argsort(-candidates.reshape(-1)[best], kind="stable")]
        parents, tokens = np.divmod(best, candidates.shape[1])

        next_beams, next_scores, next_parents = [], [], []
        for parent, token, score in zip(parents, tokens, candidates.reshape(-1)[best]):
            ids = beams[parent] + [int(token)]
            if token == eos_id:
                finished.append((score / len(ids), ids))
            else:
                next_beams.append(ids)
                next_scores.append(score)
                next_parents.append(parent)
                if len(next_beams) == num_beams:
                    break
        beams, scores = next_beams, np.array(next_scores)
        if history is not None:
            history.append(list(zip(beams, scores.tolist())))

        if not beams or step == max_new_tokens - 1:
            break
        if finished and max(f[0] for f in finished) >= scores.max() / max_new_tokens:
            break  # no running beam can overtake the best finished text
        logits = decoder.step([ids[-1] for ids in beams], next_parents)

    texts = finished + [(score / len(ids), ids) for ids, score in zip(beams, scores)]
    return max(texts, key=lambda text: text[0])[1]
