"""Softmax cross-entropy over the vocabulary: the language-modelling loss.

loss = mean over targets t of  -log softmax(logits)[t]  =  logsumexp(logits) - logits[t].
Targets equal to IGNORE_INDEX (-1) are skipped (padding, or prompt tokens in fine-tuning).
The backward is fused: d loss / d logits = (softmax(logits) - one_hot(t)) / n_targets.
"""

import numpy as np

from .module import Module

IGNORE_INDEX = -1


class CrossEntropyLoss(Module):
    def forward(self, logits, targets, overwrite_logits=False):
        """logits (..., vocab), targets (...) of ints -> scalar mean loss (a Python float).

        overwrite_logits=True computes the softmax in the logits array itself, sparing a
        vocabulary-sized copy: for callers that do not need the logits afterwards (training).
        """
        targets = np.asarray(targets)
        vocab_size = logits.shape[-1]
        if targets.shape != logits.shape[:-1]:
            raise ValueError(f"targets shape {targets.shape} does not match logits shape "
                             f"{logits.shape[:-1]} (without the vocabulary axis)")
        if not np.issubdtype(targets.dtype, np.integer):
            raise ValueError(f"targets must be integers, got dtype {targets.dtype}")
        targets = targets.reshape(-1)
        bad = (targets < IGNORE_INDEX) | (targets >= vocab_size)
        if bad.any():
            raise ValueError(f"target {targets[bad][0]} is out of range [0, {vocab_size}) "
                             f"(use {IGNORE_INDEX} to ignore a position)")
        rows = np.flatnonzero(targets != IGNORE_INDEX)
        if rows.size == 0:
            raise ValueError(f"every target is {IGNORE_INDEX}: nothing to predict")

        logits2d = logits.reshape(-1, vocab_size)
        shifted = np.subtract(logits2d, np.max(logits2d, axis=-1, keepdims=True),
                              out=logits2d if overwrite_logits else None)
        shifted_targets = shifted[rows, targets[rows]]
        exps = np.exp(shifted, out=shifted)  # in place: a vocabulary-sized array is large
        sums = np.sum(exps, axis=-1, keepdims=True)
        log_probs_of_targets = shifted_targets - np.log(sums[rows, 0])
        exps *= 1.0 / sums
        self.probs = exps
        self.rows, self.targets, self.shape = rows, targets[rows], logits.shape
        return float(-np.sum(log_probs_of_targets, dtype=np.float64) / rows.size)

    def backward(self, d_loss=1.0):
        # d loss / d logits = (p - one_hot(target)) / n for counted rows, 0 for ignored rows.
        # Written into the stored probabilities to save a vocabulary-sized copy, so this
        # may be called once per forward.
        d_logits, self.probs = self.probs, None
        d_logits[self.rows, self.targets] -= 1.0
        ignored = np.ones(len(d_logits), dtype=bool)
        ignored[self.rows] = False
        d_logits[ignored] = 0.0
        d_logits *= d_loss / self.rows.size
        return d_logits.reshape(self.shape)
