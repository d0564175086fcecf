"""The default placement rules: which layer gets Top-K when no placement is registered.

Why reduction 8: the paper's only placement in a modern CNN is ResNet-18's
``layer2``, the end of the stage that works at 1/8 of the input resolution
(28x28 for 224 px). Placing Top-K at the end of the same-resolution stage of
other families keeps K% meaning the same number of positions.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .placements import Placement

__all__ = ["timm_default", "torchvision_default", "channel_last", "is_token_model", "full_feature_info"]

TRACE_SIZE = 224


def full_feature_info(model: nn.Module) -> list[dict]:
    """timm's ``feature_info`` entries of ``model`` (all stages, also for features_only wrappers)."""
    info = getattr(model, "feature_info", None)
    if info is None:
        raise ValueError(
            f"{type(model).__name__} has no timm feature_info: name the layers yourself "
            "with topk_plugin.sparsify(model, layers, k)"
        )
    return list(getattr(info, "info", info))


def _inner(model: nn.Module) -> nn.Module:
    model_attr = model._modules.get("model")  # timm's FeatureGetterNet keeps the model here
    return model_attr if model_attr is not None else model


def is_token_model(model: nn.Module) -> bool:
    """True for ViT-style models: blocks output (n, tokens, c) with class/prefix tokens."""
    return getattr(_inner(model), "num_prefix_tokens", None) is not None


def channel_last(model: nn.Module) -> bool:
    """True when stage outputs keep channels last: tokens, or timm's NHWC maps (e.g. Swin)."""
    fmt = str(getattr(_inner(model), "output_fmt", getattr(model, "output_fmt", "NCHW")))
    return is_token_model(model) or fmt.upper().endswith(("NHWC", "NLC"))


def timm_default(model: nn.Module) -> Placement:
    """Rule ``timm-stage8`` (CNNs) or ``timm-mid-block`` (token models), from ``feature_info``."""
    info = full_feature_info(model)
    if not info:
        raise ValueError(f"{type(model).__name__}.feature_info is empty: name the layers yourself")
    tokens = is_token_model(model)
    channel_dim = -1 if channel_last(model) else 1
    stage8 = [entry["module"] for entry in info if entry.get("reduction") == 8]
    if stage8 and not tokens:
        return Placement((stage8[-1],), "timm-stage8", channel_dim)
    middle = info[len(info) // 2]["module"]
    return Placement((middle,), "timm-mid-block" if tokens else "timm-stage8", channel_dim)


def torchvision_default(model: nn.Module, size: int = TRACE_SIZE) -> Placement:
    """Rule ``tv-stage8``: one forward at ``size`` px to find the reduction-8 stage's end."""
    finished: list[tuple[str, tuple]] = []
    handles = []
    for name, module in model.named_modules():
        if not name:
            continue

        def record(_module, _inputs, output, name=name):
            if isinstance(output, torch.Tensor):
                finished.append((name, tuple(output.shape)))

        handles.append(module.register_forward_hook(record))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    stage8 = [
        name
        for name, shape in finished
        if len(shape) == 4 and shape[2] > 0 and round(math.log2(size / shape[2])) == 3
    ]
    if not stage8:
        raise ValueError(
            f"{type(model).__name__} has no 4-D output at reduction 8 for a {size} px input: "
            "name the layers yourself with topk_plugin.sparsify(model, layers, k)"
        )
    depth = min(name.count(".") for name in stage8)
    last = [name for name in stage8 if name.count(".") == depth][-1]  # hooks fire in finishing order
    return Placement((last,), "tv-stage8")
