"""What every training loop here needs to resume exactly: atomic saves, RNG states, fixed settings."""
from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

__all__ = ["atomic_torch_save", "rng_state", "set_rng_state", "check_fixed_settings"]


def atomic_torch_save(obj, path) -> Path:
    """``torch.save`` to a temporary file beside ``path``, then rename: never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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
