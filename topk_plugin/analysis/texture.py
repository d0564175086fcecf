"""Gatys texture synthesis with Top-K ablation (SPEC section 5, paper Fig. 2).

Why: if the strongest (Top-K) responses carry an image's structure and the
weak ones its texture, a texture synthesised from Gram matrices *without* the
Top-K responses keeps the look (colours, stuff) but loses the parts, and one
synthesised from the Top-K responses only keeps part-like structure.

Conditions, with ``m`` applied to the activations of the target and of the
image being synthesised alike, before the Gram matrix:

* ``all``: ``m`` = identity (plain Gatys et al.);
* ``without_topk``: ``m`` = ``spatial_topk(·, k, invert=True)`` (Top-K zeroed);
* ``topk_only``: ``m`` = ``spatial_topk(·, k)``.

Loss: mean over layers of ``||G(m(F(x))) - G(m(F(t)))||^2 / ||G(F(t))||^2``
with ``G = F F^T / positions``: Gatys's squared Gram difference, with each
layer divided by the size of the target's full Gram matrix so layers and
backbones weigh alike (the same scale for all three conditions).
"""
from __future__ import annotations

import torch

from .common import AnalysisResult, kept_fraction, run_conditions
from .conditions import condition_mask, masked
from .scores import gram_matrix

__all__ = ["texture_synthesis", "TEXTURE_CONDITIONS", "texture_loss"]

TEXTURE_CONDITIONS = ("all", "without_topk", "topk_only")


def texture_loss(features: dict, target_grams: dict, scales: dict, cond: str, k) -> torch.Tensor:
    """The synthesis loss of one image's features (see module doc)."""
    total = 0.0
    for name, f in features.items():
        g = gram_matrix(masked(f, cond, k))
        total = total + (g - target_grams[name]).pow(2).sum() / scales[name]
    return total / len(features)


def texture_synthesis(
    image,
    model="vgg16",
    *,
    weights=None,
    layers=None,
    topk=0.05,
    conditions=TEXTURE_CONDITIONS,
    steps: int = 100,
    lr: float = 1.0,
    optimizer: str = "lbfgs",
    inner_iters: int = 20,
    size: int | None = 256,
    seed: int = 0,
    device=None,
    progress: bool = True,
) -> AnalysisResult:
    """Synthesise one texture of ``image`` per condition.

    Args:
        image: a path, PIL image, array or ``(1, 3, H, W)`` tensor in [0, 1].
        model: a torchvision/timm name (``weights``: see ``load_backbone``) or a module.
        layers: module names (default: relu1_1, pool1..pool4 for VGG; see ``default_layers``).
        topk: K as a fraction in (0, 1] or an int count (authors' default 0.05).
        steps, lr, optimizer, inner_iters: paper/authors: L-BFGS, lr 1.0, 100 steps of 20 iterations.
        size: square side in px (authors: 256); ``None`` keeps a tensor's size.
        seed: seeds the initial noise; the same seed gives the same images.

    Returns an ``AnalysisResult``; ``result.save(out_dir)`` writes the grid and JSON.
    """
    for cond in conditions:
        if cond not in TEXTURE_CONDITIONS:
            raise ValueError(f"unknown texture condition {cond!r}; choose from {', '.join(TEXTURE_CONDITIONS)}")

    def make_loss(cond, target_features, extractor):
        with torch.no_grad():
            grams = {n: gram_matrix(masked(t, cond, topk)) for n, t in target_features.items()}
            scales = {n: gram_matrix(t).pow(2).sum().clamp_min(1e-30) for n, t in target_features.items()}
        masks = {n: condition_mask(t, cond, topk) for n, t in target_features.items()}
        return (lambda x: texture_loss(extractor(x), grams, scales, cond, topk)), kept_fraction(masks, target_features)

    return run_conditions(
        "texture-synthesis", image, model, conditions=conditions, make_loss=make_loss, weights=weights,
        layers=layers, topk=topk, steps=steps, lr=lr, optimizer=optimizer, inner_iters=inner_iters,
        size=size, seed=seed, device=device, progress=progress,
    )
