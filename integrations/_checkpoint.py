"""What every training loop here needs to resume exactly: atomic saves, RNG states, fixed settings."""
from __future__ import annotations

import json
import random
import warnings
from pathlib import Path

import numpy as np
import torch

from .._io import atomic_write_with, checkpoint_error

__all__ = ["atomic_torch_save", "load_torch_checkpoint", "rng_state", "set_rng_state", "check_fixed_settings"]


def atomic_torch_save(obj, path) -> Path:
    """``torch.save`` to a temporary file beside ``path``, then rename: never half-written."""
    return atomic_write_with(path, lambda f: torch.save(obj, f))


def load_torch_checkpoint(path, format: str, required=()) -> dict:
    """The dict saved at ``path`` by :func:`atomic_torch_save`, checked to be of ``format`` with ``required`` keys.

    A truncated, empty or foreign file raises ``CheckpointError`` (a ``ValueError``)
    naming the file and saying to delete it or run without ``--resume``.
    """
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol warning would precede the one-line error
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - zip, pickle and EOF errors of a damaged file alike
        lines = str(error).strip().splitlines()
        raise checkpoint_error(path, f"it is truncated or corrupt ({type(error).__name__}"
                                     f"{': ' + lines[0] if lines else ''})") from None
    if not isinstance(saved, dict) or saved.get("format") != format:
        raise checkpoint_error(path, f"it is not a {format} file")
    missing = [key for key in required if key not in saved]
    if missing:
        raise checkpoint_error(path, f"it lacks {', '.join(map(repr, missing))}")
    return saved


def rng_state() -> dict:
    """torch, numpy, python (and CUDA, if used) generator states, loadable with ``weights_only=True``."""
    keys, pos, has_gauss, cached = np.random.get_state()[1:]
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Undo :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def check_fixed_settings(saved: dict, now: dict, keys) -> None:
    """Refuse to resume when a setting that defines the run changed (compared as JSON)."""
    diff = [f"{k}: checkpoint {saved.get(k)!r} vs now {now.get(k)!r}" for k in keys
            if json.loads(json.dumps(saved.get(k))) != json.loads(json.dumps(now.get(k)))]
    if diff:
        raise ValueError("cannot resume with different settings (" + "; ".join(diff) + "); use another --out")
