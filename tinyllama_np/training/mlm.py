"""BERT's pre-training data and scores: masked tokens (MLM) and sentence pairs (NSP).

    pair     [CLS] A [SEP] B [SEP]; segment 0 up to the first [SEP], 1 after it.
             Half the time B is the sentence after A in the same story (IS_NEXT), half the
             time a sentence of another story (NOT_NEXT).
    masking  15% of the real tokens (never [CLS], [SEP], padding) are chosen; of those
             80% become [MASK], 10% a random token, 10% stay as they are. The model must
             give the original token at every chosen position, so it cannot just look for
             [MASK]: any token might be wrong.

The sentences are the bundled stories', tokenized by the bundled BPE tokenizer; BERT's four
special tokens get the ids after the tokenizer's own (SpecialIds).
"""

from dataclasses import dataclass

import numpy as np

from ..models.bert import IS_NEXT, NOT_NEXT, Bert
from ..stories import split_sentences
from .task_loop import train_task

MASK = "[MASK]"  # how a blank is written in text given to fill_in


@dataclass(frozen=True)
class SpecialIds:
    cls: int
    sep: int
    mask: int
    pad: int

    @classmethod
    def after(cls, tokenizer_vocab_size):
        n = tokenizer_vocab_size
        return cls(cls=n, sep=n + 1, mask=n + 2, pad=n + 3)

    @property
    def vocab_size(self):
        return self.pad + 1


def encode_stories(stories, tokenizer):
    """Each story as a list of sentences, each a list of token ids (stories of 2+ sentences)."""
    encoded = [[tokenizer.encode(s) for s in split_sentences(story)[0]] for story in stories]
    return [story for story in encoded if len(story) >= 2]


def sentence_pairs(stories, count, rng, max_sentence=30):
    """`count` (A, B, label) triples; sentences are cut to max_sentence tokens."""
    pairs = []
    for _ in range(count):
        story = rng.integers(len(stories))
        i = rng.integers(len(stories[story]) - 1)
        first = stories[story][i]
        if rng.random() < 0.5:
            second, label = stories[story][i + 1], IS_NEXT
        else:
            other = (story + 1 + rng.integers(len(stories) - 1)) % len(stories)  # another story
            second, label = stories[other][rng.integers(len(stories[other]))], NOT_NEXT
        pairs.append((first[:max_sentence], second[:max_sentence], label))
    return pairs


def pair_batch(pairs, ids):
    """-> tokens, segments, attention_mask (B, T) and NSP labels (B,), right-padded."""
    sequences = [[ids.cls] + a + [ids.sep] + b + [ids.sep] for a, b, _ in pairs]
    longest = max(len(s) for s in sequences)
    tokens = np.full((len(pairs), longest), ids.pad, dtype=np.int64)
    segments = np.zeros((len(pairs), longest), dtype=np.int64)
    for row, ((a, _, _), sequence) in enumerate(zip(pairs, sequences)):
        tokens[row, :len(sequence)] = sequence
        segments[row, len(a) + 2:len(sequence)] = 1
    labels = np.array([label for _, _, label in pairs])
    return tokens, segments, tokens != ids.pad, labels


def mask_tokens(tokens, maskable, rng, mask_id, vocab_size, random_ids=None, rate=0.15):
    """BERT's corruption. -> (corrupted tokens, targets: original id where chosen, else -1,
    replaced: bool, True where the token became mask_id).

    maskable: bool like tokens, the positions that may be chosen (real, non-special tokens).
    random_ids: the ids a random replacement is drawn from (default: every id but mask_id).
    Every row with a maskable position gets at least one chosen position.
    """
    tokens, maskable = np.asarray(tokens), np.asarray(maskable, dtype=bool)
    if isinstance(mask_id, bool) or not isinstance(mask_id, (int, np.integer)) or not 0 <= mask_id < vocab_size:
        raise ValueError(f"mask token id {mask_id!r} is outside the vocabulary [0, {vocab_size})")
    if maskable.shape != tokens.shape:
        raise ValueError(f"maskable shape {maskable.shape} does not match tokens shape {tokens.shape}")
    if not 0 < rate <= 1:
        raise ValueError(f"rate must lie in (0, 1], got {rate}")
    chosen = maskable & (rng.random(tokens.shape) < rate)
    for row in np.flatnonzero(~chosen.any(axis=1) & maskable.any(axis=1)):
        chosen[row, rng.choice(np.flatnonzero(maskable[row]))] = True
    draw = rng.random(tokens.shape)
    replaced = chosen & (draw < 0.8)
    randomised = chosen & (draw >= 0.8) & (draw < 0.9)  # the last 10% keep their token
    if random_ids is None:
        random_ids = np.delete(np.arange(vocab_size), mask_id)
    corrupted = tokens.copy()
    corrupted[replaced] = mask_id
    corrupted[randomised] = rng.choice(random_ids, size=int(randomised.sum()))
    targets = np.where(chosen, tokens, -1)
    return corrupted, targets, replaced


def mlm_nsp_batch(stories, batch_size, rng, ids, tokenizer_vocab_size):
    """A training batch: (tokens, segments, mlm_targets, nsp_labels, attention_mask) and the
    bool array of positions replaced by [MASK]."""
    tokens, segments, attention_mask, labels = pair_batch(sentence_pairs(stories, batch_size, rng), ids)
    maskable = attention_mask & (tokens != ids.cls) & (tokens != ids.sep)
    corrupted, targets, replaced = mask_tokens(tokens, maskable, rng, ids.mask, ids.vocab_size,
                                               random_ids=np.arange(tokenizer_vocab_size))
    return (corrupted, segments, targets, labels, attention_mask), replaced


def train_bert(stories, config, settings, ids, tokenizer_vocab_size, progress=False, log=None):
    """-> (model, losses (total per step), seconds)."""
    model = Bert(config, seed=settings.seed)

    def loss_and_grads(batch):
        (total, _, _), grads = model.loss_and_grads(*batch[0])
        return total, grads

    losses, seconds = train_task(model.params, loss_and_grads,
                                 lambda rng: mlm_nsp_batch(stories, settings.batch_size, rng, ids,
                                                           tokenizer_vocab_size),
                                 settings, progress, log)
    return model, losses, seconds


def unigram_guess(stories):
    """The most frequent token of the training sentences: the baseline that ignores context."""
    counts = np.bincount([t for story in stories for sentence in story for t in sentence])
    return int(np.argmax(counts))


def evaluate_bert(model, stories, ids, tokenizer_vocab_size, baseline_token, pairs=2000, seed=1234,
                  batch_size=100):
    """Scores on held-out stories: MLM accuracy at the [MASK]ed positions and at every chosen
    position, the unigram baseline's accuracy at the [MASK]ed positions, NSP accuracy."""
    rng = np.random.default_rng(seed)
    masked_right = masked_total = chosen_right = chosen_total = baseline_right = 0
    nsp_right = 0
    for start in range(0, pairs, batch_size):
        (tokens, segments, targets, labels, attention_mask), replaced = mlm_nsp_batch(
            stories, min(batch_size, pairs - start), rng, ids, tokenizer_vocab_size)
        mlm_logits, nsp_logits = model.forward(tokens, segments, attention_mask)
        predicted = np.argmax(mlm_logits, axis=-1)
        chosen = targets >= 0
        chosen_right += int(np.sum(predicted[chosen] == targets[chosen]))
        chosen_total += int(chosen.sum())
        masked_right += int(np.sum(predicted[replaced] == targets[replaced]))
        baseline_right += int(np.sum(targets[replaced] == baseline_token))
        masked_total += int(replaced.sum())
        nsp_right += int(np.sum(np.argmax(nsp_logits, axis=-1) == labels))
    return {"masked_accuracy": masked_right / masked_total,
            "chosen_accuracy": chosen_right / chosen_total,
            "unigram_accuracy": baseline_right / masked_total,
            "nsp_accuracy": nsp_right / pairs, "masked_positions": masked_total}


def fill_in(model, tokenizer, ids, text, top=5):
    """The `top` most likely tokens for the one [MASK] in text (one sentence, segment A).

    The blank stands for one token, which in English carries its leading space (" jump"),
    so the space before [MASK] is dropped.
    """
    if text.count(MASK) != 1:
        raise ValueError(f"fill_in needs exactly one {MASK} in {text!r}")
    before, after = text.split(MASK)
    before = before.rstrip(" ")
    sequence = [ids.cls] + tokenizer.encode(before) + [ids.mask] + tokenizer.encode(after) + [ids.sep]
    if len(sequence) > model.config.max_seq_len:
        raise ValueError(f"{text!r} is {len(sequence)} tokens, more than max_seq_len="
                         f"{model.config.max_seq_len}")
    position = sequence.index(ids.mask)
    logits, _ = model.forward(np.array([sequence]), np.zeros((1, len(sequence)), np.int64))
    best = np.argsort(-logits[0, position, :tokenizer.vocab_size])[:top]
    return [tokenizer.decode([int(t)]) for t in best]
