"""Optimising an image in pixel space: the loop shared by texture synthesis and reconstruction.

Why a sigmoid parametrisation: the image stays in [0, 1] without clipping
(clipping stalls L-BFGS), as in the authors' code. The start is
``sigmoid(z)`` with ``z ~ N(0, 1)`` drawn from a generator seeded with ``seed``,
so a seed fixes the result (L-BFGS on CPU is deterministic).

``steps`` counts optimiser steps. For L-BFGS each step runs up to
``inner_iters`` iterations with a strong-Wolfe line search (authors' code:
100 steps x 20 iterations for texture synthesis, 1 x 20 for reconstruction);
for Adam a step is one iteration.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = ["optimize_image", "OPTIMIZERS"]

OPTIMIZERS = ("lbfgs", "adam")


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, dynamic_ncols=True)


def optimize_image(
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    shape: tuple,
    *,
    optimizer: str = "lbfgs",
    steps: int = 100,
    lr: float = 1.0,
    inner_iters: int = 20,
    seed: int = 0,
    device="cpu",
    progress: bool = True,
    desc: str = "optimising",
) -> tuple[torch.Tensor, list[float]]:
    """Minimise ``loss_fn(image)`` over images of ``shape`` in [0, 1].

    Returns the image (detached) and the loss history: the loss before each
    step, then the final loss (``steps + 1`` values).
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer={optimizer!r} is not one of {', '.join(map(repr, OPTIMIZERS))}")
    if steps < 1 or inner_iters < 1:
        raise ValueError(f"steps ({steps}) and inner_iters ({inner_iters}) must be >= 1")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    gen = torch.Generator().manual_seed(int(seed))
    z = torch.randn(shape, generator=gen, dtype=torch.float32).to(device).requires_grad_(True)
    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS([z], lr=lr, max_iter=inner_iters, tolerance_grad=0.0, tolerance_change=0.0,
                                line_search_fn="strong_wolfe")
    else:
        opt = torch.optim.Adam([z], lr=lr)

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(torch.sigmoid(z))
        loss.backward()
        return loss

    losses: list[float] = []
    last_good = z.detach().clone()
    with _progress(steps, desc, progress) as bar:
        for _ in range(steps):
            loss = float(opt.step(closure).detach())
            if not math.isfinite(loss):
                break
            losses.append(loss)
            last_good = z.detach().clone()
            bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
            bar.update(1)
    with torch.no_grad():
        final = float(loss_fn(torch.sigmoid(z)))
        if not math.isfinite(final):
            z.data.copy_(last_good)
            final = float(loss_fn(torch.sigmoid(z)))
    if not math.isfinite(final):
        raise FloatingPointError(
            "the loss became NaN/inf; try a smaller --lr or --optimizer adam"
        )
    losses.append(final)
    return torch.sigmoid(z).detach(), losses
