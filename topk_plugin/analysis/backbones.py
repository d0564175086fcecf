"""Building a frozen backbone by name, offline when local weights are given.

Thin on purpose: :func:`topk_plugin.zoo.create_model` builds the model and
loads the weights (local files, the offline weights that pip packages ship). ``weights`` is one of

* ``None``: the library's pretrained weights (downloads; a clear error names
  ``--weights`` when that fails offline). For bases with offline weights in the
  zoo (e.g. ``tf_efficientnet_lite0``) those are used, no download;
* ``"offline"``: the zoo's offline weights (a pip package ships them);
* ``"random"``: random initialisation, drawn from a fixed seed so the same
  untrained network comes back every run (smoke tests, debugging);
* a path: a state dict of the plain (dense) model.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from ..zoo import WeightsUnavailableError, create_model
from ..zoo.factory import UnknownModelError, default_pretrained

__all__ = ["load_backbone", "BackboneError", "RANDOM_INIT_SEED"]

RANDOM_INIT_SEED = 0


class BackboneError(ValueError):
    """The backbone or its weights could not be built; the message says what to pass."""


def _hint(name: str) -> str:
    return (
        f"pass --weights FILE (weights=PATH) with a local state dict of {name!r}, "
        "--weights offline for the weights a pip package ships (tf_efficientnet_lite0), "
        "or --weights random for an untrained network"
    )


def load_backbone(name: str, weights=None) -> nn.Module:
    """The model ``name`` in eval mode with frozen parameters (see module doc for ``weights``).

    Built by :func:`topk_plugin.zoo.create_model`; torchvision's model wins when
    both libraries have the name, because the default layer tables use its names.
    """

    if weights is not None and weights not in ("offline", "random"):
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"weights file {str(path)!r} does not exist")
    source = "torchvision" if name in torchvision.models.list_models() else None
    if weights is None:
        options = dict(pretrained=default_pretrained(name, source))
    elif weights in ("offline", "random"):
        options = dict(pretrained="offline" if weights == "offline" else False)
    else:
        options = dict(weights_path=weights)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)  # only matters for weights="random"
            model = create_model(name, source=source, **options)
    except UnknownModelError as err:
        raise BackboneError(str(err)) from err
    except (WeightsUnavailableError, OSError, RuntimeError) as err:  # offline downloads, hub errors
        if weights is None:
            raise BackboneError(f"could not get pretrained weights for {name!r} ({err}); {_hint(name)}") from err
        raise BackboneError(f"could not build {name!r} with weights={str(weights)!r}: {err}; {_hint(name)}") from err
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
