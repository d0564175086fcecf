"""Building the model a subcommand works on, by name, with optional local weights."""
from __future__ import annotations

from torch import nn

__all__ = ["load_model", "placement"]


def load_model(name: str, weights: str | None = None) -> nn.Module:
    """A model by timm or torchvision name (``<base>`` or ``<base>_topk<pct>``).

    ``weights`` is a local state dict of the dense base. Without it: weights
    that a pip package ships when there are some (offline), else the hub's.
    """
    from ..zoo import create_model
    from ..zoo.factory import default_pretrained

    if weights is not None:
        return create_model(name, weights_path=weights)
    return create_model(name, pretrained=default_pretrained(name))


def placement(name: str, model: nn.Module, layers: list[str] | None) -> tuple[list[str], int]:
    """(layers, channel_dim): ``layers`` if given, else the registry's placement for ``name``."""
    from ..zoo import placement_of

    found = placement_of(name, model)
    return (list(layers) if layers else list(found.layers)), found.channel_dim
