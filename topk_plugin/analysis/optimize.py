"""Optimising images in pixel space until the loss stops improving (``convergence.StopRule``).

Why a sigmoid parametrisation: the image stays in [0, 1] without clipping
(clipping stalls L-BFGS), as in the authors' code. Every optimisation starts
from ``sigmoid(z)`` with ``z ~ N(0, 1)`` drawn from a generator seeded with
``seed``: the same noise for every condition, so a seed fixes the result.

Two optimisers:

* ``adam`` (:func:`minimize_batch`): per-element Adam on a batch of images,
  one optimisation per row. The update of a row reads only that row's
  gradient and moments, and a row leaves the batch when the rule stops it,
  so a batched run is each row's run alone (up to the order of float sums
  inside the batched convolutions); the batch only shares the passes
  through the backbone, which is what makes it cheaper.
* ``lbfgs`` (:func:`minimize_lbfgs`): torch's L-BFGS with a strong-Wolfe line
  search, one image at a time (its line search and curvature pairs would be
  shared across a batch, so a batched L-BFGS is a different optimiser). On
  the texture syntheses with a Top-K mask it stalls: the mask is recomputed
  from the image, the loss is only piecewise smooth, and after a few hundred
  evaluations the line search finds no step, at 1.2-4.9x Adam's loss; the
  stop rule then reads the stall as convergence (BENCHMARKS.md).

Both count loss evaluations (forward + backward passes) for the rule and
return the best iterate: the image with the lowest loss seen.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from .convergence import StopRule, Tracker

__all__ = ["DEFAULT_LR", "LR_DECAY", "OPTIMIZERS", "BatchResult", "initial_noise", "minimize_batch", "minimize_lbfgs",
           "optimize_tasks"]

OPTIMIZERS = ("adam", "lbfgs")
DEFAULT_LR = {"adam": 0.1, "lbfgs": 1.0}
LR_DECAY = 4.0  # Adam's learning rate is divided by this at each plateau of the stop rule
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def _progress(total: int, desc: str, enabled: bool):
    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, dynamic_ncols=True, unit="eval")


def initial_noise(shape: tuple, seed: int) -> torch.Tensor:
    """The seeded starting point ``z`` (the image is ``sigmoid(z)``), on the CPU."""
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randn(shape, generator=gen, dtype=torch.float32)


@dataclass
class BatchResult:
    """Each row's best image when the rule stopped it ``(n, 3, H, W)``, each row's ``Tracker``, and with
    ``extend`` > 1 each row's best image after running ``extend`` times as long."""

    images: torch.Tensor
    trackers: list[Tracker]
    extended: torch.Tensor | None = None


def _check(rule: StopRule, lr: float) -> None:
    if not isinstance(rule, StopRule):
        raise TypeError(f"rule must be a StopRule, got {type(rule).__name__}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")


def minimize_batch(objective: Callable, n: int, shape: tuple, *, rule: StopRule, lr: float = DEFAULT_LR["adam"],
                   seed: int = 0, device="cpu", dtype=torch.float32, extend: float = 1.0, progress: bool = False,
                   desc: str = "optimising") -> BatchResult:
    """Minimise ``n`` losses at once with per-row Adam; ``objective(images, rows)`` returns the ``(m,)``
    losses of the images of ``rows`` (a list of row indices), each image ``(1,) + shape[1:]``.

    Every row starts from the same seeded noise. Adam's update is torch's
    (``torch.optim.Adam`` with default betas and eps), applied row by row,
    with the row's learning rate ``lr / LR_DECAY ** plateaus seen``.
    ``extend`` > 1 runs each row on to ``extend`` times its evaluations (``Tracker``).
    """
    _check(rule, lr)
    z0 = initial_noise(shape, seed).to(device=device, dtype=dtype)
    z = z0.expand(n, *z0.shape[1:]).clone()
    m, v = torch.zeros_like(z), torch.zeros_like(z)
    best = z.clone()
    at_stop = z.clone()
    trackers = [Tracker(rule, extend) for _ in range(n)]
    active = list(range(n))
    b1, b2 = ADAM_BETAS
    step = 0
    with _progress(math.ceil(n * rule.max_evals * extend), desc, progress) as bar:
        while active:
            rows = torch.tensor(active, device=z.device)
            za = z.index_select(0, rows).requires_grad_(True)
            losses = objective(torch.sigmoid(za), active)
            (grad,) = torch.autograd.grad(losses.sum(), za)
            keep = []
            for j, (i, value) in enumerate(zip(active, losses.detach().cpu().tolist(), strict=True)):
                if trackers[i].update(value):
                    best[i] = za[j].detach()
                if not (math.isfinite(value) and torch.isfinite(grad[j]).all()):
                    trackers[i].stop()  # a NaN would spread through Adam's moments: stop at the best so far
                if trackers[i].stopped_now:
                    at_stop[i] = best[i]
                if not trackers[i].done:
                    keep.append(j)
            bar.update(len(active))
            bar.set_postfix(active=len(keep), best=f"{min(t.best_loss for t in trackers):.4g}", refresh=False)
            if not keep:
                break
            step += 1
            sel = torch.tensor(keep, device=z.device)
            idx = rows.index_select(0, sel)
            g = grad.index_select(0, sel)
            mi = m.index_select(0, idx).mul_(b1).add_(g, alpha=1 - b1)
            vi = v.index_select(0, idx).mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (vi.sqrt() / math.sqrt(1 - b2**step)).add_(ADAM_EPS)
            rates = torch.tensor([lr / LR_DECAY ** trackers[active[j]].plateau for j in keep], dtype=z.dtype,
                                 device=z.device).view(-1, *([1] * (z.ndim - 1)))
            zi = z.index_select(0, idx).addcdiv_(mi * rates, denom, value=-1 / (1 - b1**step))
            m.index_copy_(0, idx, mi)
            v.index_copy_(0, idx, vi)
            z.index_copy_(0, idx, zi)
            active = [active[j] for j in keep]
    return BatchResult(torch.sigmoid(at_stop).detach(), trackers, torch.sigmoid(best).detach() if extend > 1 else None)


class _Stop(Exception):
    """Raised from the L-BFGS closure when the rule has stopped the optimisation."""


def minimize_lbfgs(loss_fn: Callable, shape: tuple, *, rule: StopRule, lr: float = DEFAULT_LR["lbfgs"],
                   history: int = 100, seed: int = 0, device="cpu", dtype=torch.float32, progress: bool = False,
                   desc: str = "optimising") -> tuple[torch.Tensor, Tracker]:
    """Minimise ``loss_fn(image)`` with L-BFGS (strong Wolfe) until ``rule`` stops it; the best image and its tracker.

    torch's own stopping tests are off (tolerances 0); should torch end a
    step anyway (a line search that cannot move), the next step starts from
    there, and the rule sees the stall. L-BFGS's steps come from its line
    search, so a plateau changes nothing here but the count.
    """
    _check(rule, lr)
    z = initial_noise(shape, seed).to(device=device, dtype=dtype).requires_grad_(True)
    opt = torch.optim.LBFGS([z], lr=lr, max_iter=rule.max_evals, max_eval=rule.max_evals, tolerance_grad=0.0,
                            tolerance_change=0.0, history_size=history, line_search_fn="strong_wolfe")
    tracker = Tracker(rule)
    best = z.detach().clone()

    with _progress(rule.max_evals, desc, progress) as bar:
        def closure():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(torch.sigmoid(z))
            value = float(loss.detach())
            if tracker.update(value):
                best.copy_(z.detach())
            bar.update(1)
            if not math.isfinite(value):
                tracker.stop()
            if tracker.done:
                raise _Stop
            loss.backward()
            return loss

        while not tracker.done:
            try:
                opt.step(closure)
            except _Stop:
                break
    return torch.sigmoid(best).detach(), tracker


def optimize_tasks(objective: Callable, n: int, shape: tuple, *, optimizer: str = "adam", rule: StopRule,
                   lr: float | None = None, seed: int = 0, device="cpu", dtype=torch.float32, progress: bool = False,
                   desc: str = "optimising") -> BatchResult:
    """The ``n`` rows of ``objective`` (``objective(images, rows)``, as in ``minimize_batch``), each
    from the same seeded noise: one Adam batch, or one L-BFGS run per row."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer={optimizer!r} is not one of {', '.join(map(repr, OPTIMIZERS))}")
    lr = DEFAULT_LR[optimizer] if lr is None else lr
    if optimizer == "adam":
        return minimize_batch(objective, n, shape, rule=rule, lr=lr, seed=seed, device=device, dtype=dtype,
                              progress=progress, desc=desc)
    images, trackers = [], []
    for i in range(n):
        image, tracker = minimize_lbfgs(lambda x, i=i: objective(x, [i])[0], shape, rule=rule, lr=lr, seed=seed,
                                        device=device, dtype=dtype, progress=progress, desc=f"{desc} {i + 1}/{n}")
        images.append(image)
        trackers.append(tracker)
    return BatchResult(torch.cat(images), trackers)
