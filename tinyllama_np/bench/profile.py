"""`tinyllama-np bench --profile`: where the time of one training step goes, component by component.

Every component class's forward and backward is wrapped, for the duration of the profile, in
a timer that keeps its own time apart from its children's: a MultiHeadAttention's row counts
only its reshapes and transposes, because its Linear layers, RoPE and attention have rows of
their own. What no component claims (zero_grad, the loop over layers, input checks) is the
"other" row, so the rows add up to the whole step.

GFLOP/s is given where a component is matrix products: Linear (2 FLOPs per weight per row
forward, 4 backward) and attention's q.k^T and p.v products, counting the score entries it
actually computes (CausalAttention skips the blocks above the diagonal).
"""

import statistics
import time
from collections import defaultdict

import numpy as np

from ..models import Llama, TransformerBlock
from ..nn import (CausalAttention, CrossEntropyLoss, Embedding, Linear, MultiHeadAttention,
                  RMSNorm, RoPE, ScaledDotProductAttention, Softmax, SwiGLU)
from ..training.optim import AdamW, clip_grad_norm

# Each class's row in the table, in the order of the data's path through the model.
ROWS = [
    (Embedding, "embedding lookup"),
    (RMSNorm, "RMSNorm"),
    (Linear, "Linear (wq wk wv wo w1 w2 w3, output)"),
    (RoPE, "RoPE"),
    (MultiHeadAttention, "attention: reshapes, transposes, GQA"),
    (ScaledDotProductAttention, "attention: q.k^T, p.v, mask, scale"),
    (CausalAttention, "attention: q.k^T, p.v, mask, scale"),
    (Softmax, "attention: softmax"),
    (SwiGLU, "SwiGLU gating (silu, products)"),
    (TransformerBlock, "residual adds"),
    (CrossEntropyLoss, "cross-entropy"),
    (Llama, "other (zero_grad, loop, checks)"),
]


def linear_flops(module, x):
    out_features, in_features = module.params["weight"].shape
    return 2 * (x.size // x.shape[-1]) * in_features * out_features


def attention_flops(module, q, k, v, *rest):
    """2 FLOPs per multiply-add, for each score entry: d for q.k, dv for p.v."""
    heads = q.size // (q.shape[-2] * q.shape[-1])
    if isinstance(module, CausalAttention):
        entries = sum((end - start) * seen for start, end, seen in module.blocks(q.shape[-2], k.shape[-2]))
    else:
        entries = q.shape[-2] * k.shape[-2]
    return 2 * heads * entries * (q.shape[-1] + v.shape[-1])


FLOPS = {Linear: linear_flops, ScaledDotProductAttention: attention_flops,
         CausalAttention: attention_flops}


class Profiler:
    """Exclusive seconds and FLOPs per (row, "forward"/"backward")."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self.flops = defaultdict(float)
        self.children = []  # one running total of child time per call in progress
        self.patched = []

    def wrap(self, cls, label):
        for method in ("forward", "backward"):
            original = cls.__dict__[method]
            self.patched.append((cls, method, original))
            setattr(cls, method, self.timed(original, label, method, FLOPS.get(cls)))

    def timed(self, original, label, method, count_flops):
        def run(module, *args, **kwargs):
            self.children.append(0.0)
            start = time.perf_counter()
            result = original(module, *args, **kwargs)
            elapsed = time.perf_counter() - start
            child_time = self.children.pop()
            self.seconds[label, method] += elapsed - child_time
            if self.children:
                self.children[-1] += elapsed
            if count_flops is not None:
                # backward computes two products of the forward's size (input and weight
                # gradients; for attention dq, dk and dP, dV)
                forward_flops = (count_flops(module, *args) if method == "forward"
                                 else self.last_forward_flops.pop(id(module)))
                if method == "forward":
                    self.last_forward_flops[id(module)] = forward_flops
                self.flops[label, method] += forward_flops * (1 if method == "forward" else 2)
            return result
        return run

    def __enter__(self):
        self.last_forward_flops = {}
        for cls, label in ROWS:
            self.wrap(cls, label)
        return self

    def __exit__(self, *exc):
        for cls, method, original in reversed(self.patched):
            setattr(cls, method, original)
        self.patched = []


def profile_step(config, batch, seq_len, steps, out=print):
    """Time `steps` forward+backward steps component by component, then clip + AdamW."""
    model = Llama(config, seed=0, dtype=np.float32)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, config.vocab_size, size=(batch, seq_len))
    targets = rng.integers(0, config.vocab_size, size=(batch, seq_len))
    optimizer = AdamW(model.params, lr=1e-4)
    model.loss_and_grads(tokens, targets)  # warm-up
    step_times, optimizer_times = [], []
    with Profiler() as profiler:
        for _ in range(steps):
            start = time.perf_counter()
            model.loss_and_grads(tokens, targets)
            step_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            clip_grad_norm(model.grads, 1.0)
            optimizer.step(model.grads)
            optimizer_times.append(time.perf_counter() - start)
    # The Llama row is what its own forward/backward do outside the components; the
    # rest of loss_and_grads (zero_grad) is added to it, so the rows sum to the step.
    total = sum(step_times)
    claimed = sum(profiler.seconds.values())
    profiler.seconds["other (zero_grad, loop, checks)", "forward"] += total - claimed
    out(f"  forward+backward: {1e3 * total / steps:.0f} ms per step (mean of {steps}); "
        f"then clip + AdamW: {1e3 * statistics.mean(optimizer_times):.0f} ms")
    out(f"  {'component':40s} {'forward':>9s} {'backward':>9s} {'share':>6s} {'GFLOP/s':>8s}")
    labels = list(dict.fromkeys(label for _, label in ROWS))
    for label in sorted(labels, key=lambda l: -(profiler.seconds[l, "forward"]
                                                + profiler.seconds[l, "backward"])):
        forward, backward = profiler.seconds[label, "forward"], profiler.seconds[label, "backward"]
        if forward + backward == 0:
            continue
        flops = profiler.flops[label, "forward"] + profiler.flops[label, "backward"]
        rate = f"{flops / (forward + backward) / 1e9:8.0f}" if flops else f"{'':8s}"
        out(f"  {label:40s} {1e3 * forward / steps:6.1f} ms {1e3 * backward / steps:6.1f} ms "
            f"{100 * (forward + backward) / total:5.1f}% {rate}")
    return {label: (profiler.seconds[label, "forward"] + profiler.seconds[label, "backward"]) / steps
            for label in labels}
