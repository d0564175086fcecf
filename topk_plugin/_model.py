"""Where a model lives (device, floating dtype) and giving it back as it came.

Why one place: the evaluators, the search and ``calibrate`` run a user's model in
another memory format (channels_last), on a chosen device, in eval mode; inputs
must follow the model's device and dtype (a bfloat16 model gets bfloat16 batches),
and afterwards the user's model must be exactly as it was: same tensors, same
device, same memory format.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

__all__ = ["model_device", "model_dtype", "kept_as_is"]


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); the CPU for a model with neither."""
    tensor = next(model.parameters(), None)
    if tensor is None:
        tensor = next(model.buffers(), None)
    return torch.device("cpu") if tensor is None else tensor.device


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating parameter (or buffer): what its inputs should be."""
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.get_default_dtype()


@contextlib.contextmanager
def kept_as_is(model: nn.Module):
    """Inside, ``model.to(...)`` (device, dtype, memory format) and ``model.train/eval`` are free;
    after, even on error, the model holds the very tensors it had (parameters, their gradients,
    buffers), in its former mode."""
    params = [(m, name, p, p.data, p.grad, None if p.grad is None else p.grad.data)
              for m in model.modules() for name, p in m._parameters.items() if p is not None]
    buffers = [(m, name, b) for m in model.modules() for name, b in m._buffers.items() if b is not None]
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield model
    finally:
        for m, name, p, data, grad, grad_data in params:
            m._parameters[name] = p
            p.data = data
            if grad is not None:  # model.to() converts gradients too, in place
                grad.data = grad_data
            p.grad = grad
        for m, name, b in buffers:
            m._buffers[name] = b
        for m, training in modes:
            m.training = training
