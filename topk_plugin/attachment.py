"""What ``sparsify`` attaches to a model, the marks it leaves, and finding the ops again.

Why a module of its own: the layer listing, placement specs, ``calibrate`` and the
summary all need to find the ops on a model, and ``surgery`` (which attaches them)
needs the layer listing and specs; with the table and the walker here, every one of
them depends downward.

An op is attached after a layer in one of two ways:

* ``method="module"``: a child named :data:`CHILD_NAME` plus a class swap, marked by
  :data:`BASE_ATTR` on the swapped class;
* ``method="hook"``: a forward hook that is a :class:`TopKHook`.
"""
from __future__ import annotations

import torch
import torch.fx
from torch import nn

from .modules import ChannelStatsNorm, RandomK, TopK

__all__ = ["OPS", "Op", "CHILD_NAME", "BASE_ATTR", "NotATensorError", "checked_output", "TopKHook", "hook_keys",
           "is_swapped", "sparsified_layers"]

# What sparsify puts after a layer: the Top-K op, or a control: K random positions, or the
# per-image channel statistics moved toward the dataset's (no selection).
OPS = {"topk": TopK, "random": RandomK, "stats-norm": ChannelStatsNorm}
Op = TopK | RandomK | ChannelStatsNorm
CHILD_NAME = "topk"  # the attached op's name in the module tree (method="module")
BASE_ATTR = "_topk_plugin_base"  # on a swapped class: the layer's own class


class NotATensorError(TypeError):
    """A sparsified layer returned something other than a single tensor."""


def checked_output(module: nn.Module, output) -> torch.Tensor:
    """``output`` if an op can follow it (one tensor, or an FX proxy while tracing), else a clear error."""
    if not isinstance(output, (torch.Tensor, torch.fx.Proxy)):  # Proxy: FX tracing
        raise NotATensorError(
            f"Top-K cannot follow {type(module).__name__}: its output is a "
            f"{type(output).__name__}, not a single tensor. Choose a layer whose "
            "output is one (n, c, *spatial) tensor (see topk_plugin.list_layers(model, x))."
        )
    return output


class TopKHook:
    """Picklable forward hook holding its op; found again by type on removal."""

    def __init__(self, topk: Op):
        self.topk = topk

    def __call__(self, module, inputs, output):
        return self.topk(checked_output(module, output))

    def __repr__(self) -> str:
        return f"TopKHook({self.topk!r})"


def hook_keys(module: nn.Module) -> list[int]:
    """The keys of ``module``'s forward hooks that are ops attached by ``sparsify``."""
    return [key for key, hook in module._forward_hooks.items() if isinstance(hook, TopKHook)]


def is_swapped(module: nn.Module) -> bool:
    """Whether ``module``'s class was swapped by ``sparsify(method="module")``."""
    return BASE_ATTR in type(module).__dict__


def sparsified_layers(model: nn.Module) -> dict[str, Op]:
    """``{layer name: TopK, RandomK or ChannelStatsNorm}`` for every layer of ``model`` that ``sparsify`` changed."""
    found = {}
    for name, module in model.named_modules():
        if is_swapped(module):
            found[name] = getattr(module, CHILD_NAME)
        for key in hook_keys(module):
            found[name] = module._forward_hooks[key].topk
    return found
