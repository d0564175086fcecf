"""Reconstruction from Top-K or non-Top-K responses (SPEC section 6, paper Fig. 3).

Why: optimising an image whose activations match only the target's Top-K
responses shows what those responses encode. If the claim holds, the Top-K
reconstruction keeps the target's shapes and edges and the non-Top-K one
keeps colour and texture but loses the layout.

Conditions: the target's activations are multiplied by a mask ``m`` (identity,
Top-K, or non-Top-K, per sample and channel over positions); the optimised
image's own activations are *not* masked. Loss: mean over layers of
``||F(x) - m * F(t)||^2 / ||F(t)||^2``.
"""
from __future__ import annotations

import torch

from .common import AnalysisResult, kept_fraction, run_conditions
from .conditions import condition_mask, masked

__all__ = ["reconstruct", "RECONSTRUCT_CONDITIONS", "reconstruction_loss"]

RECONSTRUCT_CONDITIONS = ("identity", "topk", "non_topk")


def reconstruction_loss(features: dict, targets: dict, scales: dict) -> torch.Tensor:
    total = 0.0
    for name, f in features.items():
        total = total + (f - targets[name]).pow(2).sum() / scales[name]
    return total / len(features)


def reconstruct(
    image,
    model="vgg16",
    *,
    weights=None,
    layers=None,
    topk=0.05,
    conditions=RECONSTRUCT_CONDITIONS,
    steps: int = 1,
    lr: float = 10.0,
    optimizer: str = "lbfgs",
    inner_iters: int = 20,
    size: int | None = 256,
    seed: int = 0,
    device=None,
    progress: bool = True,
) -> AnalysisResult:
    """Reconstruct ``image`` from masked activations, one image per condition.

    Same arguments as ``texture_synthesis``; the defaults follow the authors'
    code (L-BFGS lr 10, one step of 20 iterations) since the paper gives none.
    More steps (e.g. ``steps=5``) give cleaner reconstructions.
    """
    for cond in conditions:
        if cond not in RECONSTRUCT_CONDITIONS:
            raise ValueError(f"unknown reconstruction condition {cond!r}; choose from {', '.join(RECONSTRUCT_CONDITIONS)}")

    def make_loss(cond, target_features, extractor):
        with torch.no_grad():
            targets = {n: masked(t, cond, topk) for n, t in target_features.items()}
            scales = {n: t.pow(2).sum().clamp_min(1e-30) for n, t in target_features.items()}
        masks = {n: condition_mask(t, cond, topk) for n, t in target_features.items()}
        return (lambda x: reconstruction_loss(extractor(x), targets, scales)), kept_fraction(masks, target_features)

    return run_conditions(
        "reconstruct", image, model, conditions=conditions, make_loss=make_loss, weights=weights,
        layers=layers, topk=topk, steps=steps, lr=lr, optimizer=optimizer, inner_iters=inner_iters,
        size=size, seed=seed, device=device, progress=progress,
    )
