"""Where an analysis runs, without moving a user's model for good.

Why: a model passed as a module lives where its user put it (often a GPU), so
the analysis runs there unless told otherwise; asked to run elsewhere, it
moves the model for the duration and then puts every parameter and buffer
back, the very same tensors (no copy back, nothing lost, optimisers holding
the parameters still valid). A model given by name is built here, and runs
where every other command runs by default: ``distributed.local_device``
(CUDA when there is one, else the CPU).
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..distributed import local_device

__all__ = ["analysis_device", "module_device", "placed"]


def module_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (else buffer; the CPU for a model with neither)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def analysis_device(model, device=None) -> torch.device:
    """``device`` if given; else the module's own device, or for a model name ``local_device()``."""
    if device is not None:
        return local_device(device)
    if isinstance(model, nn.Module):
        return module_device(model)
    return local_device(None)


@contextlib.contextmanager
def placed(model: nn.Module, device):
    """``model`` on ``device`` inside, exactly as it was after.

    Each module's parameters and buffers are swapped for copies on ``device``
    and the original tensors put back at the end: they are never written to,
    whatever happens inside. Tied parameters stay tied. Nothing is copied when
    everything is already on ``device``.
    """
    device = torch.device(device)
    copies: dict[int, torch.Tensor] = {}  # id(original) -> its copy, so tied tensors stay tied
    swapped: list[tuple[dict, str, torch.Tensor]] = []

    def copy(t: torch.Tensor) -> torch.Tensor:
        if id(t) not in copies:
            moved = t.detach().to(device)
            copies[id(t)] = nn.Parameter(moved, t.requires_grad) if isinstance(t, nn.Parameter) else moved
        return copies[id(t)]

    try:
        for module in model.modules():
            for table in (module._parameters, module._buffers):
                for name, t in table.items():
                    if t is not None and t.device != device:
                        swapped.append((table, name, t))
                        table[name] = copy(t)
        yield model
    finally:
        for table, name, t in reversed(swapped):
            table[name] = t
