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

Loss (``objectives.texture_loss``): mean over layers of
``||G(m(F(x))) - G(m(F(t)))||^2 / ||G(F(t))||^2`` with ``G = F F^T / positions``:
Gatys's squared Gram difference, with each layer divided by the size of the
target's full Gram matrix so layers and backbones weigh alike (the same scale
for all three conditions).
"""
from __future__ import annotations

from .common import AnalysisResult, run_conditions
from .convergence import StopRule

__all__ = ["TEXTURE_CONDITIONS", "texture_synthesis"]

TEXTURE_CONDITIONS = ("all", "without_topk", "topk_only")


def texture_synthesis(
    image,
    model="vgg16",
    *,
    weights=None,
    layers=None,
    topk=0.05,
    conditions=TEXTURE_CONDITIONS,
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
    """Synthesise one texture of ``image`` per condition, each until it converges.

    Args:
        image (str | os.PathLike | PIL.Image.Image | numpy.ndarray | torch.Tensor): a path, PIL image,
            array or ``(1, 3, H, W)`` tensor in [0, 1].
        model (str | torch.nn.Module): a torchvision/timm name (``weights``: see ``load_backbone``) or a module.
        weights (str | os.PathLike | None): for a model name: ``None`` (the library's pretrained
            weights), ``"offline"``, ``"random"`` or a local state dict (see ``load_backbone``).
        layers (Sequence[str] | None): module names (default: relu1_1, pool1..pool4 for VGG; see
            ``default_layers``).
        topk (float | int): K as a fraction in (0, 1] or an int count (authors' default 0.05).
        conditions (Sequence[str]): which of ``TEXTURE_CONDITIONS`` to run (default all three).
        optimizer: ``adam`` (default; all conditions as one batch) or ``lbfgs``
            (one condition at a time).
        lr: the learning rate; default ``optimize.DEFAULT_LR`` of the optimizer.
        tol: the stop rule (``convergence.StopRule``): a plateau is a relative
            improvement of the best loss by at most ``tol`` over ``window`` evaluations.
        window: evaluations a plateau spans.
        max_evals: the most evaluations per condition; a condition that reaches it
            stops and is recorded as not converged.
        plateaus: a condition has converged at its ``plateaus``-th plateau (Adam's
            learning rate is divided by 4 at each plateau before).
        size: square side in px (authors: 256); ``None`` keeps a tensor's size.
        seed: seeds the initial noise; the same seed gives the same images.
        device (str | torch.device | None): default the model's device (a name: CUDA if available,
            else the CPU).
        progress: show a tqdm bar.

    Returns an ``AnalysisResult``; ``result.save(out_dir)`` writes the grid and JSON.
    """
    for cond in conditions:
        if cond not in TEXTURE_CONDITIONS:
            raise ValueError(f"unknown texture condition {cond!r}; choose from {', '.join(TEXTURE_CONDITIONS)}")
    return run_conditions(
        "texture-synthesis", image, model, conditions=conditions, weights=weights, layers=layers, topk=topk,
        optimizer=optimizer, lr=lr, rule=StopRule(tol, window, max_evals, plateaus), size=size, seed=seed, device=device,
        progress=progress,
    )
