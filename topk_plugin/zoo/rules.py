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
        return Placement((_single_tensor_layer(model, stage8[-1], reduction=8),), "timm-stage8", channel_dim)
    middle = info[len(info) // 2]["module"]
    return Placement((middle,), "timm-mid-block" if tokens else "timm-stage8", channel_dim)


def _trace_outputs(model: nn.Module, prefix: str, size: int) -> list[tuple[str, object]]:
    """(name, output shape or None for non-tensors) of ``prefix`` and its descendants
    (every module for ``prefix=""``), in the order their calls finish, for one
    forward at ``size`` px."""
    finished: list[tuple[str, object]] = []
    handles = []
    for name, module in model.named_modules():
        if not prefix or name == prefix or name.startswith(prefix + "."):
            def record(_module, _inputs, output, name=name):
                shape = tuple(output.shape) if isinstance(output, torch.Tensor) else None
                finished.append((name, shape))

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
    return finished


def _single_tensor_layer(model: nn.Module, name: str, reduction: int) -> str:
    """``name`` if its output is one tensor; else (HRNet's branch lists, SelecSLS's
    [x, skip] pairs) its shallowest, last-run descendant with a 4-D output at
    ``reduction``, so Top-K has one activation map to work on."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    size = int(tuple(cfg.get("input_size", (3, TRACE_SIZE, TRACE_SIZE)))[-1])
    try:
        finished = _trace_outputs(model, name, size)
    except (RuntimeError, AssertionError, ValueError):
        # built for another input size (e.g. img_size=...): such stages output tensors
        return name
    if any(n == name and shape is not None for n, shape in finished) or not finished:
        return name
    candidates = [
        n for n, shape in finished
        if shape is not None and len(shape) == 4 and shape[2] > 0 and round(math.log2(size / shape[2])) == round(math.log2(reduction))
    ]
    if not candidates:
        raise ValueError(
            f"{name!r} of {type(model).__name__} outputs no single tensor and holds no 4-D map at "
            f"reduction {reduction}: name the layers yourself with topk_plugin.sparsify(model, layers, k)"
        )
    depth = min(n.count(".") for n in candidates)
    return [n for n in candidates if n.count(".") == depth][-1]


def torchvision_default(model: nn.Module, size: int = TRACE_SIZE) -> Placement:
    """Rule ``tv-stage8``: one forward at ``size`` px to find the reduction-8 stage's end."""
    finished = [(n, shape) for n, shape in _trace_outputs(model, "", size) if n and shape is not None]
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
