"""Argument types shared by the subcommands."""
from __future__ import annotations

import argparse
import math
import os

from ..distributed import local_device

__all__ = ["default_workers", "positive_int", "bounded_float", "check_fractions", "add_evaluation_options", "pick_device"]


def default_workers() -> int:
    """``--workers`` default: 2 decoding processes, but no more than the CPUs this process may
    use (in a 1-CPU container torch's DataLoader would otherwise warn on every run)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = os.cpu_count() or 1
    return min(2, cpus)


def positive_int(text: str) -> int:
    """An int >= 1, or argparse's usage error."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be >= 1")
    return value


def bounded_float(low: float, high: float, message: str):
    """An argparse type: a float in [low, high], else ``message.format(text)`` as the usage error."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(message.format(text))
        return value

    return parse


def check_fractions(values, *, dense_zero: bool) -> None:
    """``--topk`` values: fractions in (0, 1], or [0, 1] when 0 means the dense model."""
    for f in values:
        if math.isnan(f) or not (0 <= f if dense_zero else 0 < f) or f > 1:
            span = "[0, 1] (0 means dense)" if dense_zero else "(0, 1]"
            raise ValueError(f"--topk {f:g} is not a fraction in {span}")


def add_evaluation_options(parser: argparse.ArgumentParser, out_default: str) -> None:
    """--out, --batch-size, --workers, --device, --json, --limit-per-class: the options the
    evaluating commands share."""
    parser.add_argument("--out", metavar="DIR", default=out_default, help=f"output folder (default: {out_default})")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="image decoding processes per process (default: 2, at most the CPUs available)")
    parser.add_argument("--device", default=None,
                        help="cpu, cuda, ... (default: cuda if available; under torchrun cuda:LOCAL_RANK)")
    parser.add_argument("--limit-per-class", type=positive_int, metavar="N",
                        help="use the first N images (by file name) of each ImageNet class: a quick, deterministic "
                             "subsample of a full-size --imagenet folder")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")


def pick_device(name: str | None):
    """``--device``, else CUDA when there is one, else the CPU; under torchrun, ``cuda`` is ``cuda:LOCAL_RANK``."""
    return local_device(name)
