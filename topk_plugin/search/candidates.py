"""Which layers a placement search tries: every step of the model's sequential trunks.

Rule (documented, generic): a module is eligible when

* its parent is an ``nn.Sequential`` (a trunk: SqueezeNet's ``features.i``,
  EfficientNet's ``blocks.i.j``, ResNet's ``layerN.i``, AlexNet/VGG's
  ``features.i``) and it is not itself one (a Sequential's output is its last
  child's: Top-K there is the same placement);
* it is not inside another eligible module (ResNet's ``downsample`` branch is
  part of its block) nor in the classifier head (``classifier``, ``head``,
  ``fc``, or timm's ``pretrained_cfg["classifier"]``);
* it is not a no-op at inference (``Dropout``, ``Identity``);
* its output on a probe forward is one ``(n, c, h, w)`` tensor with at least
  ``min_positions`` positions.

Pass ``layers=`` (``--layers``) to search your own list instead.
"""
from __future__ import annotations

import torch
from torch import nn

from ..layers import forward_with_hooks, resolve_layers

__all__ = ["eligible_layers", "probe_shapes"]

HEADS = ("classifier", "head", "fc", "heads")
NO_OPS = (nn.Dropout, nn.Dropout2d, nn.Identity)


def probe_shapes(model: nn.Module, example: torch.Tensor) -> dict[str, tuple | None]:
    """``{name: output shape}`` of every submodule on one forward of ``example`` (None: not a tensor)."""
    modules = {name: m for name, m in model.named_modules() if name}
    shapes: dict[str, tuple | None] = {}

    def record(name, output):
        shapes.setdefault(name, tuple(output.shape) if isinstance(output, torch.Tensor) else None)

    was_training = model.training
    model.eval()
    try:
        forward_with_hooks(model, example, modules, record)
    finally:
        model.train(was_training)
    return shapes


def eligible_layers(model: nn.Module, example: torch.Tensor, *, min_positions: int = 4) -> list[str]:
    """The candidate layers of ``model`` in forward order (see the module doc)."""
    shapes = probe_shapes(model, example)
    modules = dict(model.named_modules())
    cfg = getattr(model, "pretrained_cfg", None) or {}
    heads = set(HEADS) | ({cfg["classifier"]} if isinstance(cfg.get("classifier"), str) else set())
    chosen: list[str] = []
    for name in resolve_layers(model, list(shapes), 1):  # module order: parents before children
        shape, module = shapes[name], modules[name]
        parent = modules[name.rpartition(".")[0]]
        if not isinstance(parent, nn.Sequential) or isinstance(module, (nn.Sequential, *NO_OPS)):
            continue
        if any(name == h or name.startswith(h + ".") for h in heads):
            continue
        if any(name.startswith(c + ".") for c in chosen):
            continue
        if shape is None or len(shape) != 4 or shape[2] * shape[3] < min_positions:
            continue
        chosen.append(name)
    if not chosen:
        raise ValueError(
            f"{type(model).__name__} has no sequential trunk with spatial outputs; "
            "pass the candidate layers explicitly (layers=[...] / --layers)"
        )
    return chosen
