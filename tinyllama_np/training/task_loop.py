"""A short training loop for small tasks that fit in memory (the number task, MLM/NSP).

    for each step:  batch = next_batch(rng);  loss, grads = loss_and_grads(batch)
                    clip the gradient norm;  AdamW step at the scheduled learning rate

Unlike loop.py (pre-training on token files, with checkpoints and exact resume) there is
nothing to save: these runs take a minute and are repeated from their seed.
"""

import time
from dataclasses import dataclass

import numpy as np

from .optim import AdamW, clip_grad_norm, learning_rate


@dataclass
class TaskSettings:
    steps: int = 1500
    batch_size: int = 128
    lr: float = 2e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.01
    beta2: float = 0.98
    grad_clip: float = 1.0
    seed: int = 0

    def check(self):
        for name in ("steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not (self.lr > 0 and 0 <= self.min_lr <= self.lr):
            raise ValueError(f"need lr > 0 and 0 <= min_lr <= lr, got lr={self.lr}, min_lr={self.min_lr}")
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("warmup_steps, weight_decay and grad_clip must not be negative")


def matrices_decay(name, param):
    """Weight matrices decay; embeddings, position tables and norms do not."""
    return param.ndim >= 2 and "embedding" not in name and "positions" not in name


def train_task(params, loss_and_grads, next_batch, settings, progress=False, log=None):
    """Train `params` (a model's dict) in place; returns (losses per step, seconds).

    loss_and_grads(batch) -> (loss, grads); next_batch(rng) -> batch.
    log(step, loss), if given, is called every 100 steps and at the end.
    """
    settings.check()
    rng = np.random.default_rng(settings.seed)
    optimizer = AdamW(params, lr=settings.lr, betas=(0.9, settings.beta2),
                      weight_decay=settings.weight_decay, decay=matrices_decay)
    steps = range(settings.steps)
    if progress:
        from tqdm import tqdm
        steps = tqdm(steps, unit="step", dynamic_ncols=True, mininterval=0.5)
    losses = []
    start = time.perf_counter()
    for step in steps:
        loss, grads = loss_and_grads(next_batch(rng))
        if not np.isfinite(loss):
            raise ValueError(f"the loss became {loss} at step {step}: lower the learning rate")
        clip_grad_norm(grads, settings.grad_clip)
        optimizer.step(grads, lr=learning_rate(step, settings.lr, settings.warmup_steps,
                                               settings.steps, settings.min_lr))
        losses.append(loss)
        if progress:
            steps.set_postfix(loss=f"{loss:.3f}", refresh=False)
        if log is not None and (step % 100 == 0 or step == settings.steps - 1):
            log(step, loss)
    return losses, time.perf_counter() - start
