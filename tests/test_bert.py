"""BERT: gradient checks of the MLM and NSP heads and of the whole pre-training loss; masking."""

import numpy as np
import pytest

import tinyllama_np as tl
from tinyllama_np.models.bert import Bert, BertConfig, MLMHead, NSPHead
from tinyllama_np.training.mlm import SpecialIds, mask_tokens, pair_batch, sentence_pairs

TOLERANCE = 1e-6


def assert_gradients_match(report):
    assert report, "gradcheck checked nothing"
    worst = max(report, key=report.get)
    assert report[worst] < TOLERANCE, f"{worst}: relative error {report[worst]:.2e}\n{report}"


def normal(rng, *shape):
    return rng.standard_normal(shape)


def mlm_head(rng):
    norm = tl.LayerNorm(1 + 0.2 * normal(rng, 6), 0.2 * normal(rng, 6))
    return MLMHead(tl.Linear(normal(rng, 6, 6)), norm, tl.Linear(normal(rng, 11, 6)))


class PretrainingLoss(tl.Module):
    """BERT's MLM + NSP loss as a module with one scalar output, for gradcheck."""

    def __init__(self, bert):
        super().__init__()
        self.bert, self.params, self.grads = bert, bert.params, bert.grads

    def forward(self, tokens, segments, mlm_targets, nsp_labels, attention_mask):
        return np.array(self.bert.loss(tokens, segments, mlm_targets, nsp_labels, attention_mask)[0])

    def backward(self, d_loss):
        self.bert.backward_loss(float(d_loss))


def small_bert(rng, norm_first=False):
    bert = Bert(BertConfig(vocab_size=14, dim=8, n_heads=2, n_layers=2, hidden_dim=12, max_seq_len=9,
                           norm_first=norm_first), dtype=np.float64)
    for name, param in bert.params.items():
        if param.ndim == 1:
            param[...] = (1.0 if name.endswith("weight") else 0.0) + 0.2 * normal(rng, *param.shape)
        else:
            param[...] = normal(rng, *param.shape) * 0.5
    tokens = rng.integers(0, 14, size=(3, 7))
    segments = np.array([[0, 0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1, 1]])
    attention_mask = tl.padding_mask([7, 5, 7], 7)
    mlm_targets = np.full((3, 7), -1)
    mlm_targets[0, [1, 4]] = [3, 9]
    mlm_targets[1, 2] = 5
    mlm_targets[2, [1, 2, 6]] = [0, 13, 7]
    return bert, (tokens, segments, mlm_targets, np.array([0, 1, 1]), attention_mask)


def test_mlm_head(rng):
    report = tl.gradcheck(mlm_head(rng), normal(rng, 5, 6))
    assert {"input 0", "param dense.weight", "param norm.weight"} <= set(report)
    assert_gradients_match(report)


def test_nsp_head(rng):
    head = NSPHead(tl.Linear(normal(rng, 6, 6)), tl.Linear(normal(rng, 2, 6)))
    assert_gradients_match(tl.gradcheck(head, normal(rng, 4, 6)))


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-norm", "pre-norm"])
def test_whole_pretraining_loss(rng, norm_first):
    bert, inputs = small_bert(rng, norm_first)
    report = tl.gradcheck(PretrainingLoss(bert), *inputs, max_entries=30)
    assert len(report) == len(bert.params)
    assert_gradients_match(report)


def test_mlm_loss_counts_only_chosen_positions(rng):
    bert, (tokens, segments, targets, labels, mask) = small_bert(rng)
    _, mlm, _ = bert.loss(tokens, segments, targets, labels, mask)
    logits, _ = bert.forward(tokens, segments, mask)
    chosen = targets >= 0
    expected = tl.CrossEntropyLoss().forward(logits[chosen], targets[chosen])
    assert abs(mlm - expected) < 1e-12


def test_padding_changes_nothing_for_the_real_tokens(rng):
    bert, (tokens, segments, _, _, _) = small_bert(rng)
    short_mlm, short_nsp = bert.forward(tokens[1:2, :5], segments[1:2, :5])
    padded = tokens[1:2].copy()
    padded[0, 5:] = 13
    mlm, nsp = bert.forward(padded, segments[1:2], tl.padding_mask([5], 7))
    np.testing.assert_allclose(mlm[:, :5], short_mlm, atol=1e-12)
    np.testing.assert_allclose(nsp, short_nsp, atol=1e-12)


def test_masking_proportions():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 100, size=(400, 50))
    maskable = np.ones_like(tokens, dtype=bool)
    maskable[:, 0] = False
    corrupted, targets, replaced = mask_tokens(tokens, maskable, rng, mask_id=100, vocab_size=101)
    chosen = targets >= 0
    assert not chosen[:, 0].any()
    assert abs(chosen.mean() - 0.15 * 49 / 50) < 0.005
    assert (targets[chosen] == tokens[chosen]).all() and (corrupted[~chosen] == tokens[~chosen]).all()
    assert abs(replaced.sum() / chosen.sum() - 0.8) < 0.02
    kept = chosen & ~replaced & (corrupted == tokens)
    assert abs(kept.sum() / chosen.sum() - 0.1) < 0.02  # (a random draw may hit the same token: ~0.1%)
    assert (corrupted[replaced] == 100).all() and not (corrupted[chosen & ~replaced] == 100).any()


def test_pairs_and_segments():
    ids = SpecialIds.after(20)
    stories = [[[1, 2], [3], [4, 5, 6]], [[7], [8, 9]]]
    pairs = sentence_pairs(stories, 200, np.random.default_rng(0))
    labels = [label for _, _, label in pairs]
    assert 60 < sum(labels) < 140
    tokens, segments, mask, _ = pair_batch([([1, 2], [3], 0)], ids)
    assert tokens.tolist() == [[ids.cls, 1, 2, ids.sep, 3, ids.sep]]
    assert segments.tolist() == [[0, 0, 0, 0, 1, 1]] and mask.all()


@pytest.mark.parametrize("mask_id", [101, -1, 2.0])
def test_mask_id_outside_vocabulary(mask_id):
    with pytest.raises(ValueError, match="mask token id"):
        mask_tokens(np.zeros((2, 3), int), np.ones((2, 3), bool), np.random.default_rng(0), mask_id, 101)


@pytest.mark.parametrize("change, message", [
    (lambda i: (i[0], i[1][:, :5]) + i[2:], "segments shape"),
    (lambda i: (i[0] + 20,) + i[1:], "tokens token id"),
    (lambda i: (i[0], i[1] + 1) + i[2:], "segments token id"),
    (lambda i: i[:3] + (np.array([0, 1]),) + i[4:], "one label per row"),
    (lambda i: i[:4] + (np.ones((3, 6), bool),), "attention_mask"),
    (lambda i: i[:2] + (i[2][:, :4],) + i[3:], "mlm_targets shape"),
])
def test_bad_input(rng, change, message):
    bert, inputs = small_bert(rng)
    with pytest.raises(ValueError, match=message):
        bert.loss(*change(inputs))
