"""The variant name grammar: ``<base>_topk<pct>`` and ``<base>_topk<pct>mean``.

* ``resnet18_topk20``: ``resnet18`` with Top-K keeping 20% of the positions
  (``k=0.2``) at each layer of its placement.
* ``resnet18_topk20mean``: the same selection with the paper's mean
  replacement (``mode="mean"``): kept positions get their channel's mean.

``pct`` is an integer percent from 1 to 100 without leading zeros (100 keeps
everything: the identity). The suffix is lower case, so the names survive
torchvision's lower-casing lookups.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["VariantName", "parse_variant_name", "variant_name", "is_variant_name", "EAGER_PCTS", "MODES"]

# The percents registered eagerly with timm and torchvision (issue 3).
EAGER_PCTS = (5, 10, 20, 30, 40, 50)
# Registered spellings: suffix after ``_topk<pct>`` -> TopK ``mode``.
MODES = {"": "keep", "mean": "mean"}

_PATTERN = re.compile(r"^(?P<base>.+?)_topk(?P<pct>[1-9][0-9]*)(?P<mode>mean)?$")


class VariantNameError(ValueError):
    """A name that does not follow ``<base>_topk<pct>[mean]``."""


@dataclass(frozen=True)
class VariantName:
    """A parsed variant name; ``k`` is the fraction handed to ``sparsify``."""

    base: str
    pct: int
    mode: str = "keep"

    @property
    def k(self) -> float:
        return float(Fraction(self.pct, 100))

    @property
    def name(self) -> str:
        return variant_name(self.base, self.pct, self.mode)


def variant_name(base: str, pct: int, mode: str = "keep") -> str:
    """``variant_name("resnet18", 20, "mean") == "resnet18_topk20mean"``."""
    suffix = {v: k for k, v in MODES.items()}.get(mode)
    if suffix is None:
        raise ValueError(f"mode={mode!r} is not one of {', '.join(map(repr, MODES.values()))}")
    _check_pct(pct, base)
    return f"{base}_topk{pct}{suffix}"


def _check_pct(pct: int, name: str) -> None:
    if isinstance(pct, bool) or not isinstance(pct, int) or not 1 <= pct <= 100:
        raise VariantNameError(f"{name!r}: the Top-K percent must be an integer from 1 to 100, got {pct!r}")


def parse_variant_name(name: str) -> VariantName:
    """Split ``name`` into base, percent and mode, or raise a clear error.

    A timm pretrained tag (``resnet18_topk20.a1_in1k``) is not part of the
    grammar: strip it before parsing (timm does this itself).
    """
    if not isinstance(name, str):
        raise TypeError(f"a model name must be a str, got {type(name).__name__}")
    match = _PATTERN.match(name)
    if match is None:
        raise VariantNameError(
            f"{name!r} is not a Top-K variant name: expected '<base>_topk<pct>' or "
            "'<base>_topk<pct>mean' with pct an integer percent (e.g. 'resnet18_topk20', "
            "'alexnet_topk10mean')"
        )
    pct = int(match["pct"])
    _check_pct(pct, name)
    return VariantName(match["base"], pct, MODES[match["mode"] or ""])


def is_variant_name(name: str) -> bool:
    try:
        parse_variant_name(name)
    except (VariantNameError, TypeError):
        return False
    return True
