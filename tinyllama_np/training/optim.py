"""Optimizers, learning-rate schedule and gradient clipping.

All updates are in place: `param -= ...` writes into the model's own arrays (which every
module holding them sees) and allocates nothing per step beyond small temporaries.

AdamW keeps, per parameter, running averages of the gradient (m) and of its square (v):

    m = b1 m + (1 - b1) g             v = b2 v + (1 - b2) g^2
    m_hat = m / (1 - b1^t)            v_hat = v / (1 - b2^t)        (bias correction)
    param -= lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * param)

The weight decay is "decoupled" (the W in AdamW): it shrinks the weights directly rather
than being added to the gradient, where Adam's per-parameter scaling would distort it.
"""

import math

import numpy as np


def decays_by_default(name, param):
    """Matrices decay; norm scales (1-D) and the token embedding do not (LLaMA practice)."""
    return param.ndim >= 2 and not name.startswith("tok_embeddings")


class AdamW:
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1,
                 decay=decays_by_default, frozen=()):
        """params: the model's dict name -> array. `frozen`: names never updated."""
        self.params = params
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.frozen = set(frozen)
        self.decayed = {name for name, p in params.items() if decay(name, p)}
        self.m = {name: np.zeros_like(p) for name, p in params.items() if name not in self.frozen}
        self.v = {name: np.zeros_like(p) for name, p in params.items() if name not in self.frozen}
        self.step_count = 0

    def step(self, grads, lr=None, map=map):
        """One update of every parameter. `map` may run the per-parameter updates on several
        threads at once (each parameter's arrays are its own): DataParallel.map does."""
        lr = self.lr if lr is None else lr
        beta1, beta2 = self.betas
        self.step_count += 1
        # Bias corrections as Python floats, so float32 arrays stay float32.
        correction1 = 1.0 - beta1 ** self.step_count
        correction2 = 1.0 - beta2 ** self.step_count
        step_size = lr / correction1

        def update(name):
            param, grad, m, v = self.params[name], grads[name], self.m[name], self.v[name]
            m *= beta1
            m += (1.0 - beta1) * grad
            v *= beta2
            v += (1.0 - beta2) * (grad * grad)
            if name in self.decayed and self.weight_decay:
                param *= 1.0 - lr * self.weight_decay
            # m_hat / (sqrt(v_hat) + eps) = (m / c1) / (sqrt(v) / sqrt(c2) + eps)
            denominator = np.sqrt(v)
            denominator *= 1.0 / math.sqrt(correction2)
            denominator += self.eps
            param -= step_size * (m / denominator)
        for _ in map(update, self.m):
            pass

    def state(self):
        """Everything needed to continue exactly: arrays by name and the step count."""
        arrays = {f"m.{name}": m for name, m in self.m.items()}
        arrays.update({f"v.{name}": v for name, v in self.v.items()})
        return arrays, {"step_count": self.step_count}

    def load_state(self, arrays, info):
        for name in self.m:
            for key, target in ((f"m.{name}", self.m[name]), (f"v.{name}", self.v[name])):
                if key not in arrays:
                    raise ValueError(f"optimizer state has no entry {key!r}")
                if arrays[key].shape != target.shape:
                    raise ValueError(f"optimizer state {key!r} has shape {arrays[key].shape}, "
                                     f"the model needs {target.shape}")
                target[...] = arrays[key]
        self.step_count = int(info["step_count"])


class SGD:
    """Plain stochastic gradient descent with optional momentum, for comparison:
    velocity = momentum * velocity + g;  param -= lr * (velocity + weight_decay * param)."""

    def __init__(self, params, lr=1e-2, momentum=0.9, weight_decay=0.0,
                 decay=decays_by_default, frozen=()):
        self.params = params
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.frozen = set(frozen)
        self.decayed = {name for name, p in params.items() if decay(name, p)}
        self.velocity = {name: np.zeros_like(p) for name, p in params.items() if name not in self.frozen}
        self.step_count = 0

    def step(self, grads, lr=None, map=map):
        """One update of every parameter; `map` as in AdamW.step."""
        lr = self.lr if lr is None else lr
        self.step_count += 1

        def update(name):
            param, velocity = self.params[name], self.velocity[name]
            velocity *= self.momentum
            velocity += grads[name]
            if name in self.decayed and self.weight_decay:
                param *= 1.0 - lr * self.weight_decay
            param -= lr * velocity
        for _ in map(update, self.velocity):
            pass

    def state(self):
        return {f"velocity.{name}": v for name, v in self.velocity.items()}, {"step_count": self.step_count}

    def load_state(self, arrays, info):
        for name, velocity in self.velocity.items():
            key = f"velocity.{name}"
            if key not in arrays or arrays[key].shape != velocity.shape:
                raise ValueError(f"optimizer state {key!r} is missing or has the wrong shape")
            velocity[...] = arrays[key]
        self.step_count = int(info["step_count"])


def learning_rate(step, max_lr, warmup_steps, total_steps, min_lr):
    """Linear warm-up from 0 to max_lr over warmup_steps, then cosine decay to min_lr at total_steps.

    Warm-up: at the start Adam's statistics are poor and the weights random, so large steps
    would be erratic. Cosine decay: smaller steps at the end settle into a minimum.
    `step` counts from 0; the first update uses step 0.
    """
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def sum_of_squares(array):
    # ravel(order="K") lists the elements in the order they lie in memory: a view of a
    # column-by-column weight's gradient, where a plain ravel (or np.vdot) would copy it.
    flat = array.ravel(order="K")
    return float(np.dot(flat, flat))


def clip_grad_norm(grads, max_norm, names=None):
    """Scale all gradients down together if their global L2 norm exceeds max_norm.

    Returns the norm before clipping. A single bad batch then cannot throw the weights far,
    and the direction of the update is unchanged. `names` limits it to some gradients
    (the trainable ones when layers are frozen).
    """
    names = list(grads) if names is None else names
    total = math.sqrt(sum(sum_of_squares(grads[n]) for n in names))
    if max_norm and total > max_norm:
        scale = max_norm / (total + 1e-6)
        for n in names:
            grads[n] *= scale
    return total
