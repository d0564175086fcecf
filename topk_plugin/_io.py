"""Files that are never left half-written: atomic writes, staged result folders, checkpoints and the resume check."""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = [
    "CheckpointError",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "atomic_write_with",
    "check_same_settings",
    "checkpoint_error",
    "json_safe",
    "read_json_checkpoint",
    "staged_outputs",
]


def _file_mode() -> int:
    """What ``open()`` would create: 0666 less the umask (``mkstemp`` makes 0600, which hides results from others)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_with(path: str | os.PathLike, write: Callable, *, binary: bool = True,
                      newline: str | None = None) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over ``path``.

    A failure (a full disk, Ctrl-C) leaves ``path`` as it was; the file gets the
    permissions a plain ``open()`` would give it (the umask's).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w", newline=newline) as f:
            write(f)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, newline: str | None = None) -> Path:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    return atomic_write_with(path, lambda f: f.write(text), binary=False, newline=newline)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """``atomic_write_text`` for bytes (images, figures)."""
    return atomic_write_with(path, lambda f: f.write(data))


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


@contextlib.contextmanager
def staged_outputs(out: str | os.PathLike) -> Iterator[Path]:
    """A hidden folder inside ``out`` to write a run's result files into.

    When the block ends normally its files move into ``out`` (one rename each,
    so a full disk cannot strike half-way); when it raises, the folder is
    removed, and so is ``out`` if this created it and it is empty again. Either
    every result file of the run is there, or none is: never a CSV without its
    summary. A killed process leaves only the hidden ``.partial-*`` folder.
    """
    out = Path(out)
    created = [p for p in (out, *out.parents) if not p.exists()]
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=out, prefix=".partial-"))
    try:
        yield stage
        for item in sorted(stage.iterdir()):
            if not item.is_file():
                raise IsADirectoryError(f"staged_outputs moves files only, not the folder {item}")
            os.replace(item, out / item.name)
        stage.rmdir()
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        for folder in created:  # innermost first; stops at the first that is not empty
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def check_same_settings(checkpoint, saved: dict, current: dict) -> None:
    """Refuse to resume from ``checkpoint`` when it was made with other settings, naming them."""
    differ = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    if differ:
        raise ValueError(
            f"cannot resume from {checkpoint}: it was made with other settings ({', '.join(differ)}); "
            "rerun with the same options, or without --resume (or another --out) to start afresh"
        )


class CheckpointError(ValueError):
    """A checkpoint exists but cannot be used (truncated, corrupt, another format, missing entries)."""


def checkpoint_error(path, problem: str) -> CheckpointError:
    """The one message for every unusable checkpoint: the file, what is wrong, and the two ways out."""
    return CheckpointError(f"cannot resume from {path}: {problem}; delete the file, or run without --resume "
                           "(or with another --out) to start afresh")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def read_json_checkpoint(path: str | os.PathLike, format: str, required=()) -> dict:
    """The JSON object of checkpoint ``path``, checked to be of ``format`` and to hold the ``required`` keys.

    Every way a file can be unusable (cut short by a full disk, binary junk,
    another program's JSON) raises :class:`CheckpointError` naming the file.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise checkpoint_error(path, f"it is truncated or corrupt ({_first_line(error)})") from None
    if not isinstance(data, dict) or data.get("format") != format:
        raise checkpoint_error(path, f"it is not a {format} file")
    missing = [key for key in required if key not in data]
    if missing:
        raise checkpoint_error(path, f"it lacks {', '.join(map(repr, missing))}")
    return data
