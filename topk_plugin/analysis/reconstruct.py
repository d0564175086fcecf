"""Reconstruction from Top-K / non-Top-K responses (SPEC section 6, paper Fig. 3).

Why: optimising an image whose activations match only the target's Top-K
responses shows what those responses encode. If the claim holds, the Top-K
reconstruction keeps the target's shapes and edges and the non-Top-K one
keeps colour and texture but loses the layout.

Conditions: the target's activations are multiplied by a mask ``m`` (identity,
Top-K, or non-Top-K, per sample and channel over positions); the optimised
image's own activations are *not* masked. Loss (``objectives.reconstruction_loss``):
mean over layers of ``||F(x) - m * F(t)||^2 / ||F(t)||^2``.
"""
from __future__ import annotations

from .common import AnalysisResult, run_conditions
from .convergence import StopRule

__all__ = ["RECONSTRUCT_CONDITIONS", "reconstruct"]

RECONSTRUCT_CONDITIONS = ("identity", "topk", "non_topk")


def reconstruct(
    image,
    model="vgg16",
    *,
    weights=None,
    layers=None,
    topk=0.05,
    conditions=RECONSTRUCT_CONDITIONS,
    optimizer: str = "adam",
    lr: float | None = None,
    tol: float = StopRule.tol,
    window: int = StopRule.window,
    max_evals: int = StopRule.max_evals,
    plateaus: int = StopRule.plateaus,
    size: int | None = 256,
    seed: int = 0,
    device=None,
    progress: bool = True,
) -> AnalysisResult:
    """Reconstruct ``image`` from masked activations, one image per condition, each until it converges.

    Same arguments as ``texture_synthesis``.
    """
    for cond in conditions:
        if cond not in RECONSTRUCT_CONDITIONS:
            raise ValueError(f"unknown reconstruction condition {cond!r}; choose from {', '.join(RECONSTRUCT_CONDITIONS)}")
    return run_conditions(
        "reconstruct", image, model, conditions=conditions, weights=weights, layers=layers, topk=topk,
        optimizer=optimizer, lr=lr, rule=StopRule(tol, window, max_evals, plateaus), size=size, seed=seed, device=device,
        progress=progress,
    )
