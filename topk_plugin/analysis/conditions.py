"""The three views of an activation that the experiments compare.

Texture synthesis names them ``all`` / ``without_topk`` / ``topk_only``,
reconstruction ``identity`` / ``non_topk`` / ``topk``; both map to: everything,
everything but the Top-K entries (``spatial_topk(..., invert=True)``), the
Top-K entries only (``spatial_topk``), per sample and channel over positions.
"""
from __future__ import annotations

import torch

from ..functional import spatial_topk, topk_mask
from .features import channel_dim_of

__all__ = ["masked", "condition_mask"]


def masked(t: torch.Tensor, cond: str, k) -> torch.Tensor:
    """``t`` as a condition sees it: all, without Top-K, or Top-K only."""
    if cond in ("all", "identity"):
        return t
    if cond in ("without_topk", "non_topk"):
        return spatial_topk(t, k, invert=True, channel_dim=channel_dim_of(t))
    if cond in ("topk_only", "topk"):
        return spatial_topk(t, k, channel_dim=channel_dim_of(t))
    raise ValueError(f"unknown condition {cond!r}")


def condition_mask(t: torch.Tensor, cond: str, k):
    """Bool mask of the entries a condition keeps, or None for all of them."""
    if cond in ("all", "identity"):
        return None
    m = topk_mask(t, k, channel_dim=channel_dim_of(t))
    return ~m if cond in ("without_topk", "non_topk") else m
