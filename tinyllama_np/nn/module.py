"""The small base class every component shares.

A component keeps its parameters in `params` (name -> ndarray) and the gradient of the
loss with respect to each of them in `grads` (same names, same shapes).

    y = module.forward(x)       computes the output and remembers what backward needs
    dx = module.backward(dy)    takes dL/dy, returns dL/dx, and ADDS dL/dparam into grads

Adding (rather than overwriting) lets one parameter be used twice (tied embeddings) or
gradients be summed over several micro-batches; call `zero_grad()` to start afresh.
A backward returns one gradient per floating-point input of forward, in order (a tuple
when there are several); integer inputs such as token ids get no gradient.

Parameters are updated in place (`params[name][...] = new`, `params[name] -= step`), so
every module that shares an array sees the change.

A frozen parameter (`freeze`) has no entry in `grads`: backward computes nothing for it and
no memory is spent on its gradient (fine-tuning with LoRA freezes every base weight).
"""

import numpy as np


def memory_order(array):
    """'F' for an array stored column by column (Fortran order), else 'C'."""
    return "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"


class Module:
    def __init__(self):
        self.params = {}
        self.grads = {}

    def add_param(self, name, value, grad=None):
        """Register a parameter. Passing `grad` shares a gradient buffer with another module."""
        self.params[name] = value
        # np.zeros takes no memory until written, so inference-only models pay nothing.
        # (np.zeros_like would: it fills its result with zeros, touching every page.)
        # The gradient gets the parameter's memory order (see Llama's weights), so that the
        # element-wise work of optimizers runs through both arrays in step.
        if grad is None:
            grad = np.zeros(value.shape, value.dtype, order=memory_order(value))
        self.grads[name] = grad

    def add_module(self, name, module):
        """Register a sub-module: its params and grads appear here as 'name.param'."""
        for key, value in module.params.items():
            self.params[f"{name}.{key}"] = value
            if key in module.grads:  # frozen parameters have none
                self.grads[f"{name}.{key}"] = module.grads[key]
        return module

    def submodules(self):
        """This module and every module inside it (attributes holding a Module or a list of
        them), each once."""
        found, stack = {}, [self]
        while stack:
            module = stack.pop()
            if id(module) in found:
                continue
            found[id(module)] = module
            for value in vars(module).values():
                items = value if isinstance(value, list) else [value]
                stack.extend(item for item in items if isinstance(item, Module))
        return list(found.values())

    def freeze(self, names):
        """Drop the gradient buffers of the parameters `names` (this module's names) here and
        in every sub-module that holds the same array, so backward skips them. Call it on
        the outermost module (the model): modules above it would keep their entries."""
        frozen = {id(self.params[name]) for name in names}
        for module in self.submodules():
            for key, value in module.params.items():
                if id(value) in frozen:
                    module.grads.pop(key, None)

    def zero_grad(self):
        for grad in self.grads.values():
            grad.fill(0)

    def forward(self, *inputs):
        raise NotImplementedError

    def backward(self, d_out):
        raise NotImplementedError
