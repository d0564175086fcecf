"""Activations of named layers of any backbone, differentiable w.r.t. the input image.

Why hooks and not ``features_only`` or FX: forward hooks work on every
torchvision and timm model (and any ``nn.Module``) without rebuilding it, and
layers are named exactly as ``topk_plugin.list_layers`` lists them. The forward
pass stops as soon as every requested layer has produced its output, so
synthesis with early layers of a big network does not pay for the rest.
"""
from __future__ import annotations

import contextlib
import warnings

import torch
from torch import nn

from ..functional import resolve_k
from ..layers import UnknownLayerError, resolve_layers
from ..shape_bias.batches import IMAGENET_MEAN, IMAGENET_STD, model_normalization

__all__ = [
    "FeatureExtractor",
    "default_layers",
    "input_stats",
    "channel_dim_of",
    "DEFAULT_LAYERS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]


# Gatys et al.'s texture layers (relu1_1, pool1..pool4; the authors' code uses
# the same five) and their counterparts in other backbones: the first
# activation, then the output at each later resolution.
DEFAULT_LAYERS = {
    "vgg16": ["features.1", "features.4", "features.9", "features.16", "features.23"],
    "vgg16_bn": ["features.2", "features.6", "features.13", "features.23", "features.33"],
    "vgg19": ["features.1", "features.4", "features.9", "features.18", "features.27"],
    "vgg19_bn": ["features.2", "features.6", "features.13", "features.26", "features.39"],
    "squeezenet1_0": ["features.1", "features.2", "features.6", "features.11", "features.12"],
    "squeezenet1_1": ["features.1", "features.2", "features.5", "features.8", "features.12"],
    "tf_efficientnet_lite0": ["bn1", "blocks.1", "blocks.2", "blocks.4", "blocks.6"],
    "alexnet": ["features.1", "features.2", "features.5", "features.9", "features.12"],
}


class _Done(Exception):
    """Raised by the last needed hook to end the forward pass early."""


def channel_dim_of(t: torch.Tensor) -> int:
    """1 for ``(n, c, *spatial)`` maps, -1 for ``(n, tokens, c)`` token tensors."""
    return -1 if t.ndim == 3 else 1


def input_stats(model: nn.Module) -> tuple[tuple, tuple]:
    """The (mean, std) the model's weights expect: timm's pretrained_cfg, else ImageNet's."""
    return model_normalization(model)


def _base_name(name: str) -> str:
    name = name.split(":", 1)[-1]  # timm:/tv: prefixes
    return name.split(".", 1)[0]


def default_layers(model: nn.Module, name: str | None = None, size: int = 224, count: int = 5) -> list[str]:
    """Five layers from early to deep: the paper's for VGG, else one per resolution.

    Known backbones (``DEFAULT_LAYERS``) use a fixed list. For any other model a
    probe forward at ``size`` px records, for each spatial resolution (more than
    one position) in the order it first appears, the last module called exactly
    once that outputs a 4-D tensor at that resolution (e.g. ResNet's ``act1``, ``layer1``..``layer4``).
    """
    if name is not None and _base_name(name) in DEFAULT_LAYERS:
        return list(DEFAULT_LAYERS[_base_name(name)])
    calls: dict[str, int] = {}
    finished: list[tuple[str, tuple]] = []
    handles = []
    for mod_name, module in model.named_modules():
        if not mod_name:
            continue

        def hook(_m, _i, out, mod_name=mod_name):
            calls[mod_name] = calls.get(mod_name, 0) + 1
            if isinstance(out, torch.Tensor) and out.ndim == 4 and out.shape[2] * out.shape[3] > 1:
                finished.append((mod_name, tuple(out.shape[2:])))

        handles.append(module.register_forward_hook(hook))
    param = next(model.parameters(), None)
    x = torch.zeros(1, 3, size, size, device=param.device if param is not None else "cpu")
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    groups: list[tuple[tuple, str]] = []
    for mod_name, shape in finished:
        if calls[mod_name] != 1:
            continue
        if groups and groups[-1][0] == shape:
            groups[-1] = (shape, mod_name)
        elif all(g[0] != shape for g in groups):
            groups.append((shape, mod_name))
    if not groups:
        raise ValueError(
            f"could not pick default layers for {type(model).__name__}: no module outputs a 4-D map; "
            "pass the layers by name (see topk_plugin.list_layers(model))"
        )
    return [mod_name for _, mod_name in groups[:count]]


@contextlib.contextmanager
def frozen(model: nn.Module):
    """Eval mode and no parameter gradients for the duration, then restore both."""
    training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(training)


class FeatureExtractor:
    """``extractor(image)`` -> ``{layer name: activation}`` for images in [0, 1].

    The image is normalised with the model's mean/std first (``input_stats``).
    A module called several times reports its first call. Outputs are cloned
    so later in-place ops (``ReLU(inplace=True)``) cannot change them.
    """

    def __init__(self, model: nn.Module, layers, *, mean=None, std=None):
        names = list(resolve_layers(model, layers, k=1))
        self.model = model
        self.layers = names
        self._modules = dict(model.named_modules())
        stats_mean, stats_std = input_stats(model)
        self.mean = torch.tensor(mean or stats_mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std or stats_std, dtype=torch.float32).view(1, 3, 1, 1)

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        return (image - self.mean.to(image)) / self.std.to(image)

    def __call__(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"expected an image batch (n, 3, H, W), got shape {tuple(image.shape)}")
        captured: dict[str, torch.Tensor] = {}
        wanted = set(self.layers)
        handles = []
        for name in self.layers:
            def hook(_m, _i, out, name=name):
                if name in captured:
                    return
                if not isinstance(out, torch.Tensor):
                    raise TypeError(
                        f"layer {name!r} outputs a {type(out).__name__}, not a tensor; "
                        "choose a module that outputs one tensor (see topk_plugin.list_layers)"
                    )
                captured[name] = out.clone()
                if len(captured) == len(wanted):
                    raise _Done

            handles.append(self._modules[name].register_forward_hook(hook))
        try:
            self.model(self.normalize(image))
        except _Done:
            pass
        finally:
            for h in handles:
                h.remove()
        missing = [n for n in self.layers if n not in captured]
        if missing:
            raise UnknownLayerError(
                f"layers {missing} were never called in the forward pass of {type(self.model).__name__}; "
                "choose modules that run in forward()"
            )
        for name, t in captured.items():
            if not 3 <= t.ndim <= 5:
                raise ValueError(
                    f"layer {name!r} outputs shape {tuple(t.shape)}; analysis needs spatial maps "
                    "(n, c, h, w) or tokens (n, tokens, c): choose an earlier layer"
                )
        return {n: captured[n] for n in self.layers}


def positions_of(t: torch.Tensor) -> int:
    """Number of spatial positions (or tokens) per channel."""
    return t.shape[1] if channel_dim_of(t) == -1 else int(torch.tensor(t.shape[2:]).prod())


def warn_degenerate(features: dict[str, torch.Tensor], k) -> None:
    """Warn when K covers every position of a layer, so the Top-K conditions coincide there."""
    for name, t in features.items():
        p = positions_of(t)
        if resolve_k(k, p) >= p:
            warnings.warn(
                f"layer {name!r} has only {p} positions per channel and K={resolve_k(k, p)} keeps all of them: "
                "there 'Top-K only' equals 'all' and 'non-Top-K' is empty. Use a larger image or earlier layers.",
                stacklevel=3,
            )
