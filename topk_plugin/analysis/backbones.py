"""Building a frozen backbone by name, offline when local weights are given.

Thin on purpose: the torchvision or timm constructor plus a local state dict;
the model zoo (``topk_plugin.zoo.weights``) supplies the offline weights that
pip packages ship. ``weights`` is one of

* ``None``: the library's pretrained weights (downloads; a clear error names
  ``--weights`` when that fails offline). For bases with offline weights in the
  zoo (e.g. ``tf_efficientnet_lite0``) those are used, no download;
* ``"offline"``: the zoo's offline weights (a pip package ships them);
* ``"random"``: random initialisation (smoke tests, debugging);
* a path: a state dict of the plain (dense) model.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

__all__ = ["load_backbone", "BackboneError"]


class BackboneError(ValueError):
    """The backbone or its weights could not be built; the message says what to pass."""


def _offline_state_dict(name: str):
    """The zoo's offline weights for ``name``, or None when it has none."""
    try:
        from ..zoo.weights import OFFLINE_SOURCES, offline_state_dict
    except ImportError:
        return None
    return offline_state_dict(name) if name in OFFLINE_SOURCES else None


def _offline_available(name: str) -> bool:
    try:
        from ..zoo.weights import OFFLINE_SOURCES
    except ImportError:
        return False
    return name in OFFLINE_SOURCES


def _hint(name: str) -> str:
    return (
        f"pass --weights FILE (weights=PATH) with a local state dict of {name!r}, "
        "--weights offline for the weights a pip package ships (tf_efficientnet_lite0), "
        "or --weights random for an untrained network"
    )


def _fallback(name: str, weights) -> nn.Module:
    import timm
    import torchvision

    pretrained = weights is None
    if name in torchvision.models.list_models():
        return torchvision.models.get_model(name, weights="DEFAULT" if pretrained else None)
    if timm.is_model(name):
        return timm.create_model(name, pretrained=pretrained)
    import difflib

    close = difflib.get_close_matches(name, torchvision.models.list_models() + timm.list_models(), n=5, cutoff=0.6)
    hint = f"; closest: {', '.join(close)}" if close else ""
    raise BackboneError(f"{name!r} is neither a torchvision nor a timm model{hint}")


def _load_state_dict(model: nn.Module, path: Path) -> None:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    model.load_state_dict(state)


def load_backbone(name: str, weights=None) -> nn.Module:
    """The model ``name`` in eval mode with frozen parameters (see module doc for ``weights``)."""
    if weights is not None and weights not in ("offline", "random"):
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"weights file {str(path)!r} does not exist")
    if weights is None and _offline_available(name):
        weights = "offline"  # no download when a pip package ships the weights
    try:
        model = _fallback(name, weights if weights is None else "random")
        if weights == "offline":
            state = _offline_state_dict(name)
            if state is None:
                raise BackboneError(f"no offline weights are known for {name!r}; {_hint(name)}")
            model.load_state_dict(state)
        elif weights not in (None, "random"):
            _load_state_dict(model, Path(weights))
    except BackboneError:
        raise
    except (OSError, RuntimeError) as err:  # downloads offline, hub errors, missing offline package
        if weights is None:
            raise BackboneError(f"could not get pretrained weights for {name!r} ({err}); {_hint(name)}") from err
        raise BackboneError(f"could not build {name!r} with weights={str(weights)!r}: {err}") from err
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
