"""Model-zoo integration: ``<base>_topk<pct>[mean]`` names in timm, torchvision and ``create_model``.

``register_all()`` (called by ``import topk_plugin``) registers the eager
variants; ``create_model`` builds any base, registered or not. The registry
itself is data in :mod:`.placements`; ``python -m topk_plugin.zoo.table``
prints it.
"""
from __future__ import annotations

import warnings

from .factory import create_model, placement_of
from .names import EAGER_PCTS, VariantName, parse_variant_name, variant_name
from .placements import RULES, TIMM, TORCHVISION, Placement
from .timm_registry import register_timm, registered_timm_names
from .torchvision_registry import TorchvisionRegistryError, register_torchvision, registered_torchvision_names
from .weights import WeightsUnavailableError, efficientnet_lite0_state_dict, load_weights_file

__all__ = [
    "register_all",
    "registered_names",
    "create_model",
    "placement_of",
    "parse_variant_name",
    "variant_name",
    "VariantName",
    "Placement",
    "RULES",
    "TIMM",
    "TORCHVISION",
    "EAGER_PCTS",
    "WeightsUnavailableError",
    "efficientnet_lite0_state_dict",
    "load_weights_file",
]


def register_all(strict: bool = False) -> dict[str, list[str]]:
    """Register every eager variant with timm and torchvision; safe to call again.

    torchvision's registry is private: if it changed, the torchvision names
    are skipped with a warning that says why (``strict=True`` raises instead);
    timm names and ``create_model`` keep working.
    """
    names = {"timm": register_timm(), "torchvision": []}
    try:
        names["torchvision"] = register_torchvision()
    except TorchvisionRegistryError as error:
        if strict:
            raise
        warnings.warn(str(error), RuntimeWarning, stacklevel=2)
    return names


def registered_names() -> dict[str, list[str]]:
    """``{"timm": [...], "torchvision": [...]}``: the names registered so far."""
    return {"timm": registered_timm_names(), "torchvision": registered_torchvision_names()}
