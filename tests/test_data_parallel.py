"""Data parallelism: the batch split over worker threads gives the one-worker loss and
gradients, the replicas share the model's weights, and BLAS's thread count comes back."""

import numpy as np
import pytest

from tinyllama_np.blas_threads import blas_threads, find_openblas
from tinyllama_np.models import Llama, LlamaConfig
from tinyllama_np.training.data_parallel import (DataParallel, choose_workers, default_workers,
                                               replicate)
from tinyllama_np.training.optim import SGD, AdamW

needs_openblas = pytest.mark.skipif(find_openblas() is None, reason="NumPy's BLAS is not OpenBLAS")


def model_and_batch(batch=5, tie_embeddings=False):
    config = LlamaConfig(vocab_size=23, dim=16, n_layers=2, n_heads=4, n_kv_heads=2,
                         hidden_dim=24, max_seq_len=9, tie_embeddings=tie_embeddings)
    model = Llama(config, seed=1, dtype=np.float64)
    rng = np.random.default_rng(2)
    tokens = rng.integers(0, 23, size=(batch, 9))
    targets = rng.integers(0, 23, size=(batch, 9))
    targets[0, :7] = -1  # rows with different numbers of counted targets
    targets[min(3, batch - 1), 2:] = -1
    return model, tokens, targets


def loss_and_grads(model, tokens, targets, workers, d_loss=1.0):
    parallel = DataParallel(model, workers)
    model.zero_grad()
    loss = parallel.loss_and_backward(tokens, targets, d_loss)
    return loss, {name: grad.copy() for name, grad in model.grads.items()}


@pytest.mark.parametrize("workers", [2, 3])
@pytest.mark.parametrize("tie_embeddings", [False, True])
def test_workers_give_the_one_worker_loss_and_gradients(workers, tie_embeddings):
    model, tokens, targets = model_and_batch(tie_embeddings=tie_embeddings)
    loss, grads = loss_and_grads(model, tokens, targets, 1, d_loss=0.5)
    parallel_loss, parallel_grads = loss_and_grads(model, tokens, targets, workers, d_loss=0.5)
    assert parallel_loss == pytest.approx(loss, rel=1e-12)
    assert grads.keys() == parallel_grads.keys()
    for name in grads:
        np.testing.assert_allclose(parallel_grads[name], grads[name], rtol=1e-10, atol=1e-14,
                                   err_msg=name)


def test_gradients_add_into_the_model_as_a_backward_does():
    model, tokens, targets = model_and_batch()
    _, once = loss_and_grads(model, tokens, targets, 2)
    parallel = DataParallel(model, 2)
    model.zero_grad()
    parallel.loss_and_backward(tokens, targets)
    parallel.loss_and_backward(tokens, targets)  # two micro-batches: the gradients add up
    for name, grad in model.grads.items():
        np.testing.assert_allclose(grad, 2 * once[name], rtol=1e-10, atol=1e-14, err_msg=name)


def test_a_row_with_nothing_to_predict_is_left_out():
    model, tokens, targets = model_and_batch(batch=2)
    targets[1] = -1  # the second worker's only row counts no target
    loss, grads = loss_and_grads(model, tokens[:1], targets[:1], 1)
    parallel_loss, parallel_grads = loss_and_grads(model, tokens, targets, 2)
    assert parallel_loss == pytest.approx(loss, rel=1e-12)
    for name in grads:
        np.testing.assert_allclose(parallel_grads[name], grads[name], rtol=1e-10, atol=1e-14)


def test_a_replica_shares_the_weights_and_owns_its_gradients():
    model, tokens, targets = model_and_batch(tie_embeddings=True)
    replica = replicate(model)
    for name, param in model.params.items():
        assert replica.params[name] is param, name
        assert replica.grads[name] is not model.grads[name], name
    # tied weights stay tied inside the replica: one gradient buffer for both uses
    assert replica.output.grads["weight"] is replica.tok_embeddings.grads["weight"]
    model.params["norm.weight"][...] = 3.0  # an optimizer update, seen by the replica
    np.testing.assert_array_equal(replica.norm.params["weight"], 3.0)


@needs_openblas
def test_a_bad_token_in_a_worker_is_a_clear_error_and_threads_come_back():
    model, tokens, targets = model_and_batch()
    tokens[4, 0] = 99  # out of range, in the second worker's rows
    before = find_openblas().get_threads()
    with pytest.raises(ValueError, match="99"):
        DataParallel(model, 2).loss_and_backward(tokens, targets)
    assert find_openblas().get_threads() == before


@needs_openblas
def test_blas_threads_are_set_inside_and_restored_after():
    openblas = find_openblas()
    before = openblas.get_threads()
    with blas_threads(1):
        assert openblas.get_threads() == 1
    assert openblas.get_threads() == before


def test_zero_workers_is_an_error():
    model, _, _ = model_and_batch()
    with pytest.raises(ValueError, match="at least 1"):
        DataParallel(model, 0)


def test_a_thread_variable_the_user_set_means_one_worker(monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    workers, why = default_workers()
    assert workers == 1 and "OPENBLAS_NUM_THREADS=2" in why
    monkeypatch.delenv("OPENBLAS_NUM_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    workers, why = default_workers()
    assert workers >= 1 and why


@pytest.mark.parametrize("optimizer_class", [AdamW, SGD])
def test_an_update_on_the_workers_threads_equals_the_plain_one(optimizer_class):
    model, tokens, targets = model_and_batch()
    _, grads = loss_and_grads(model, tokens, targets, 1)
    start = {name: param.copy() for name, param in model.params.items()}
    plain = optimizer_class(model.params, lr=1e-2)
    plain.step(grads)
    plainly_updated = {name: param.copy() for name, param in model.params.items()}
    for name, param in model.params.items():
        param[...] = start[name]
    threaded = optimizer_class(model.params, lr=1e-2)
    threaded.step(grads, map=DataParallel(model, 2).map)
    for name, param in model.params.items():
        assert not np.array_equal(param, start[name]), name  # the update did happen
        np.testing.assert_array_equal(param, plainly_updated[name], err_msg=name)


def test_a_requested_number_of_workers_is_taken_and_checked():
    assert choose_workers(3)[0] == 3
    assert choose_workers(None) == default_workers()
    with pytest.raises(ValueError, match="--workers must be at least 1, got 0"):
        choose_workers(0)
