"""Atomic file writes (results and checkpoints are never left half-written), and the resume check."""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write_text", "atomic_write_bytes", "atomic_write_json", "json_safe", "check_same_settings"]


def _atomic_write(path: str | os.PathLike, data, mode: str, newline: str | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, newline=newline) as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, newline: str | None = None) -> Path:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    return _atomic_write(path, text, "w", newline)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """``atomic_write_text`` for bytes (images, figures)."""
    return _atomic_write(path, data, "wb")


def json_safe(value):
    """NaN and inf become None, so the output is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def atomic_write_json(path: str | os.PathLike, data) -> Path:
    return atomic_write_text(path, json.dumps(json_safe(data), indent=2) + "\n")


def check_same_settings(checkpoint, saved: dict, current: dict) -> None:
    """Refuse to resume from ``checkpoint`` when it was made with other settings, naming them."""
    differ = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    if differ:
        raise ValueError(
            f"cannot resume from {checkpoint}: it was made with other settings ({', '.join(differ)}); "
            "rerun with the same options, or without --resume (or another --out) to start afresh"
        )
