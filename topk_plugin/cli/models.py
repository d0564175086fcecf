"""Building the model a subcommand works on, by name, with optional local weights."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["load_model", "default_layers"]


def load_model(name: str, weights: str | None = None) -> nn.Module:
    """A dense model by timm or torchvision name; ``weights`` is a local state dict."""
    from ..zoo import create_model

    return create_model(name, pretrained=weights is None, weights_path=weights)


def default_layers(name: str, model: nn.Module) -> list[str]:
    """The registry's default Top-K placement for ``name``."""
    from ..zoo import default_layers as registry_layers

    return registry_layers(name, model)
