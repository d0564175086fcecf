"""Checks run before a command's work, so a mistake in the options costs a second, not the run.

Every check raises ``ValueError`` with one line naming the problem and the fix
(``main`` prints it and exits with status 2). ``check_options`` runs for every
command from ``main``; the model checks run once a command has built its model.
"""
from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path

import torch

from ..layers import UnknownLayerError, resolve_layers
from ..zoo.names import is_variant_name, parse_variant_name

__all__ = ["check_device", "check_layers", "check_options", "check_out", "check_weights_file", "dense_base"]

WEIGHTS_KEYWORDS = ("offline", "random")  # --weights values of the analysis commands that are no file


def check_out(out: str | os.PathLike, flag: str = "--out") -> None:
    """``out`` is, or can become, a folder this process can write in: checked by creating (and removing) a
    folder there, so read-only mounts and permissions count even for root. Creates nothing that stays."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{flag} {out} is a file, not a folder: pass a folder (new or existing) for the results")
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"{flag} {out}: {existing} is a file, so no folder can be made there; pass another folder")
    try:
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".topk-plugin-probe-"))
    except OSError as error:
        raise ValueError(f"{flag} {out}: cannot write in {existing} ({error.strerror or error}); "
                         "pass a folder you can write to") from None


def check_device(name: str | None) -> None:
    """``--device`` names a device this machine has (None: the default, always fine)."""
    if name is None:
        return
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device {name} is not a device: use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: PyTorch sees no CUDA GPU here (torch.cuda.is_available() is False); "
                             "use --device cpu, or leave --device out to take a GPU when there is one")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: there are {torch.cuda.device_count()} CUDA GPUs "
                             f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"--device {name}: Apple's MPS is not available here; use --device cpu")
    elif device.type != "cpu":
        raise ValueError(f"--device {name}: topk-plugin runs on cpu, cuda or mps")


def check_weights_file(path: str | None) -> None:
    """``--weights`` names an existing file (its content is checked when the model loads it)."""
    if path is None or path in WEIGHTS_KEYWORDS:
        return
    if not Path(path).is_file():
        what = "a folder, not a weights file" if Path(path).is_dir() else "no such weights file"
        raise ValueError(f"--weights {path}: {what}; pass a state dict of the dense base model, saved with "
                         "torch.save(model.state_dict(), FILE)")


def check_options(args) -> None:
    """The checks every command gets: ``--device``, ``--weights`` (a file), ``--out`` (writable) when present.

    ``shape-bias --csv`` writes nothing, so its ``--out`` is not checked.
    """
    check_device(getattr(args, "device", None))
    check_weights_file(getattr(args, "weights", None))
    if getattr(args, "out", None) is not None and not getattr(args, "csv", None):
        check_out(args.out)


def check_layers(model, layers: list[str] | None, *, patterns: bool) -> None:
    """Every ``--layers`` entry names a module of ``model`` (or, with ``patterns``, matches one), each once."""
    if not layers:
        return
    twice = [name for name, count in Counter(layers).items() if count > 1]
    if twice:
        raise ValueError(f"--layers names {', '.join(twice)} more than once; name each layer once")
    modules = dict(model.named_modules())
    for name in layers:
        if name in modules:
            continue
        try:
            resolve_layers(model, [name], 1)
        except UnknownLayerError as error:
            raise ValueError(f"--layers: {error}") from None
        if not patterns:
            raise ValueError(f"--layers {name}: this command takes module names, not patterns; name the layers")


def dense_base(name: str, command: str) -> str:
    """``name`` itself when it names a dense model; a Top-K variant name is refused with its base.

    Why refuse rather than take the base: the command adds Top-K itself (at
    ``--topk`` and its layers), so a variant would either be sparsified twice or
    have its K and mode silently replaced; the message gives the command to run.
    """
    prefix, colon, rest = name.rpartition(":")
    arch, dot, tag = rest.partition(".")
    if not is_variant_name(arch):
        return name
    variant = parse_variant_name(arch)
    base = f"{prefix}{colon}{variant.base}{dot}{tag}"
    mean = " (its mean replacement is no option here)" if variant.mode != "keep" else ""
    topk = f" --topk 0 {variant.k:g}" if command == "shape-bias" else f" --topk {variant.k:g}"
    raise ValueError(f"--model {name} is a Top-K variant{mean}; {command} adds Top-K to the dense model itself: "
                     f"pass the base, --model {base}{topk}")
