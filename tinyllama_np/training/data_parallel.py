"""Data parallelism: one batch split across the cores, one copy of the model per part.

    rows 0..3 of the batch -> worker 0 (the model itself)  -> its gradients
    rows 4..7 of the batch -> worker 1 (a replica)          -> the replica's gradients
    model.grads += the replica's gradients

The loss is a mean over every counted target of the batch, so each worker's gradient is
weighted by its share of those targets: d(loss)/d(its mean) = n_worker / n_total.

A replica shares the model's parameter arrays, so every optimizer update is seen by all
workers at once, but it has its own gradient buffers and its own saved activations: the
workers never write to the same array. NumPy lets go of Python's global interpreter lock
inside matrix products and element-wise loops, so the worker threads really run at the
same time, one per core. Each worker's matrix products then use a single BLAS thread
(blas_threads.py); otherwise each would ask for every core. (That needs OpenBLAS, which
NumPy's wheels bundle; with another BLAS, workers still give the same results, but the
commands default to one.)

This is how multi-GPU training works too (PyTorch's DistributedDataParallel): the same
model on every device, a slice of the batch each, gradients summed before the update.
The sum is done in a different order than with one worker, so the results agree to float32
rounding, not bit for bit.
"""

import copy
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..blas_threads import blas_threads, find_openblas
from ..nn import CrossEntropyLoss
from ..nn.loss import IGNORE_INDEX


THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


def default_workers():
    """(workers, why): one worker per core, unless the user chose BLAS's threads
    themselves (OPENBLAS_NUM_THREADS or OMP_NUM_THREADS), which is then respected, or
    NumPy's BLAS is not OpenBLAS."""
    chosen = [f"{name}={os.environ[name]}" for name in THREAD_VARIABLES if name in os.environ]
    if chosen:
        return 1, f"{chosen[0]} is set, so NumPy's BLAS threads are left as they are"
    if find_openblas() is None:
        return 1, "NumPy's BLAS is not OpenBLAS"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if cores == 1:
        return 1, "one core"
    return cores, (f"data parallel, one per core, each with one BLAS thread; --workers 1 or "
                   f"{THREAD_VARIABLES[0]} keeps one")


def choose_workers(requested=None):
    """(workers, why) for a command's --workers N: N if given (at least 1), else
    default_workers()."""
    if requested is None:
        return default_workers()
    if requested < 1:
        raise ValueError(f"--workers must be at least 1, got {requested}")
    return requested, ("data parallel, one BLAS thread each" if requested > 1 else "--workers 1")


def replicate(model):
    """A deep copy of `model` that shares its parameter arrays and owns everything else."""
    shared = {id(param): param for param in model.params.values()}
    replica = copy.deepcopy(model, memo=shared)
    replica.zero_grad()
    return replica


class DataParallel:
    def __init__(self, model, workers=1):
        """Call this after freezing parameters: the replicas copy the model's grads."""
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.model = model
        self.workers = [model] + [replicate(model) for _ in range(workers - 1)]
        self.losses = [CrossEntropyLoss() for _ in self.workers]
        self.pool = ThreadPoolExecutor(len(self.workers)) if workers > 1 else None

    def map(self, function, items):
        """function(item) for every item, on the workers' threads (element-wise work, such as
        the optimizer's update of each parameter, which releases Python's lock); a list, in
        the order of `items`.

        Each thread takes the next item nobody has taken, until none is left: one task per
        thread rather than one per item, whose hand-over to a thread would cost more than
        the update of a small parameter."""
        items = list(items)
        if self.pool is None:
            return [function(item) for item in items]
        results = [None] * len(items)
        untaken = iter(range(len(items)))
        lock = threading.Lock()

        def take_until_none_left():
            while True:
                with lock:
                    index = next(untaken, None)
                if index is None:
                    return
                results[index] = function(items[index])
        with blas_threads(1):
            tasks = [self.pool.submit(take_until_none_left) for _ in self.workers]
            for task in tasks:
                task.result()  # raises a worker's error here
        return results

    def loss_and_backward(self, tokens, targets, d_loss=1.0):
        """Mean cross-entropy of predicting `targets` from `tokens` (a Python float), and
        d_loss times its gradients ADDED into model.grads (as a backward does)."""
        tokens, targets = np.asarray(tokens), np.asarray(targets)
        parts = [rows for rows in np.array_split(np.arange(len(tokens)), len(self.workers))
                 if np.any(targets[rows] != IGNORE_INDEX)]
        if len(parts) < 2:  # one worker, or too few rows to share: no threads needed
            loss = self.losses[0].forward(self.model.forward(tokens), targets, overwrite_logits=True)
            self.model.backward(self.losses[0].backward(d_loss))
            return loss
        counts = [np.count_nonzero(targets[rows] != IGNORE_INDEX) for rows in parts]
        total = sum(counts)

        def work(index):
            worker, loss_fn, rows = self.workers[index], self.losses[index], parts[index]
            loss = loss_fn.forward(worker.forward(tokens[rows]), targets[rows], overwrite_logits=True)
            worker.backward(loss_fn.backward(d_loss * counts[index] / total))
            return loss * counts[index] / total

        for replica in self.workers[1:len(parts)]:
            replica.zero_grad()
        with blas_threads(1):
            loss = sum(self.pool.map(work, range(len(parts))))
        for replica in self.workers[1:len(parts)]:
            for name, grad in self.model.grads.items():
                grad += replica.grads[name]
        return loss
