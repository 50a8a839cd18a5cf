"""Check a hand-written backward against finite differences.

For a module with output y = f(inputs, params), reduce y to a scalar with a fixed random
projection, L = sum(y * R), so dL/dy = R reaches every output element. Then compare

    analytic:   backward(R)                  (the code under test)
    numerical:  (L(w + eps) - L(w - eps)) / (2 eps)   for each entry w   (central difference)

with eps = 1e-5: the central difference's truncation error shrinks like eps^2 and its
rounding error grows like 1e-16 / eps; in float64 the two balance near 1e-5.

entry by entry with the relative error |a - n| / (|a| + |n|). In float64 a correct backward
gives about 1e-7 or smaller; a wrong one gives something near 1.

Usage, on any component or on the whole model:

    report = gradcheck(RMSNorm(w), x)            # {"input 0": 3e-10, "param weight": 2e-10}
    report = gradcheck(model, tokens, max_entries=20)
"""

import numpy as np


def _is_differentiable(value):
    return isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.floating)


def _relative_errors(analytic, numerical):
    # A finite difference carries rounding noise of about 1e-10 whatever the entry's size,
    # so an entry a thousand times smaller than the tensor's largest is judged against
    # 1/1000 of that largest value, not against its own (noise-sized) magnitude.
    magnitude = np.abs(analytic) + np.abs(numerical)
    floor = max(1e-3 * np.max(magnitude), 1e-30)
    return np.abs(analytic - numerical) / np.maximum(magnitude, floor)


def gradcheck(module, *inputs, eps=1e-5, max_entries=None, seed=0, verbose=False, **kwargs):
    """Worst relative error of backward against central differences, per input and parameter.

    Floating-point inputs and every parameter are checked (work in float64: float32's
    rounding swamps the differences). `max_entries` samples that many entries per tensor
    instead of all of them. Extra keyword arguments are passed to forward.
    Returns {"input i": error, "param name": error}.
    """
    for name, value in list(module.params.items()) + [(f"input {i}", x) for i, x in enumerate(inputs)]:
        if _is_differentiable(value) and value.dtype != np.float64:
            raise ValueError(f"gradcheck needs float64 ({name} is {value.dtype}): "
                             "float32 rounding is larger than the differences it measures")
    rng = np.random.default_rng(seed)
    output = module.forward(*inputs, **kwargs)
    projection = rng.standard_normal(np.shape(output))

    def loss():
        return float(np.sum(module.forward(*inputs, **kwargs) * projection))

    # Analytic gradients.
    module.zero_grad()
    module.forward(*inputs, **kwargs)
    input_grads = module.backward(projection)
    if not isinstance(input_grads, tuple):
        input_grads = (input_grads,)
    checked = {}
    float_inputs = [(i, x) for i, x in enumerate(inputs) if _is_differentiable(x)]
    for (i, x), grad in zip(float_inputs, input_grads):
        checked[f"input {i}"] = (x, grad)
    for name, value in module.params.items():
        if name in module.grads:  # a frozen parameter has no gradient to check
            checked[f"param {name}"] = (value, module.grads[name].copy())

    # Numerical gradients, perturbing one entry at a time (in place, then restoring it).
    report = {}
    for name, (tensor, analytic) in checked.items():
        if analytic is None or np.shape(analytic) != tensor.shape:
            raise ValueError(f"backward returned a gradient of shape {np.shape(analytic)} for "
                             f"{name} of shape {tensor.shape}")
        # Entries are picked by their flat position and reached through their index, which
        # works for any memory order (Llama's weight matrices are stored column by column).
        entries = np.arange(tensor.size)
        if max_entries is not None and tensor.size > max_entries:
            entries = rng.choice(tensor.size, size=max_entries, replace=False)
        analytic = np.asarray(analytic)
        numerical, analytic_entries = np.empty(len(entries)), np.empty(len(entries))
        for j, entry in enumerate(entries):
            index = np.unravel_index(entry, tensor.shape)
            original = tensor[index]
            tensor[index] = original + eps
            plus = loss()
            tensor[index] = original - eps
            minus = loss()
            tensor[index] = original
            numerical[j] = (plus - minus) / (2 * eps)
            analytic_entries[j] = analytic[index]
        report[name] = float(np.max(_relative_errors(analytic_entries, numerical)))
        if verbose:
            print(f"  {name:<40s} worst relative error {report[name]:.1e}")
    return report
