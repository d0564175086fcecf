"""When an image optimisation is done: a rule on the loss, not a step count.

Why: a fixed budget (the authors' one L-BFGS step of 20 iterations) stops some
optimisations long before they converge and runs others long after, so the
scores compare optimisers that have not started with ones that have finished.
The rule here stops each optimisation when its loss stops improving.

The unit is the *evaluation*: one forward and backward pass of the loss, the
thing that costs time. Adam makes one per iteration; L-BFGS's line search makes
one or more per iteration, so counting evaluations treats both alike.

The rule: with ``b(n)`` the lowest loss among the first ``n`` evaluations, an
optimisation has converged after ``n`` evaluations when ``n > window`` and

    b(n - window) - b(n) <= tol * |b(n - window)|,

i.e. the best loss improved by at most ``tol`` (relative) over the last
``window`` evaluations: a *plateau*. The lowest loss, not the last one, so
Adam's oscillations and L-BFGS's trial points of the line search neither stop
a run early nor keep it alive.

A plateau of Adam with a fixed learning rate is often its noise floor rather
than the optimum: the steps are too long to go further down. So the rule
waits for ``plateaus`` of them: after each plateau but the last the optimiser
takes smaller steps (Adam's learning rate divided by ``optimize.LR_DECAY``)
and the window starts afresh; the optimisation has converged at the last
plateau, when even the smallest steps no longer improve the loss. It stops at
``max_evals`` at the latest and is then recorded as not converged. The result
of a run is its best iterate.

The defaults (0.2% over 50 evaluations, 3 plateaus, cap 2400) come from
running the claim run's optimisations twice as long (BENCHMARKS.md, "Is the
stop rule tight?"): that moved 95 of the 96 means of the Top-K-masked
conditions by at most 0.21 of their interval's half-width (the other by 0.27)
and every Top-K minus non-Top-K difference by at most 0.17; with 2 plateaus
and a cap of 1200, 22 of the 96 moved by more than 0.25 (up to 1.08).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

__all__ = ["StopRule", "Tracker"]


@dataclass(frozen=True)
class StopRule:
    """Stop at the ``plateaus``-th time the best loss improved by at most ``tol`` (relative) over the
    last ``window`` evaluations, or after ``max_evals`` evaluations (then not converged)."""

    tol: float = 2e-3
    window: int = 50
    max_evals: int = 2400
    plateaus: int = 3

    def __post_init__(self):
        if not 0 <= self.tol < 1:
            raise ValueError(f"tol={self.tol} must be in [0, 1): a relative improvement of the loss")
        if self.window < 1:
            raise ValueError(f"window={self.window} must be >= 1 evaluation")
        if self.max_evals < 1:
            raise ValueError(f"max_evals={self.max_evals} must be >= 1")
        if self.plateaus < 1:
            raise ValueError(f"plateaus={self.plateaus} must be >= 1")

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Tracker:
    """One optimisation under a ``StopRule``: feed it every loss evaluation with ``update``.

    ``extend`` > 1 keeps the optimisation running past the rule's stop, to
    ``extend`` times the evaluations the rule used: how the result would move
    if it ran longer (the convergence check of BENCHMARKS.md). The rule's own
    stop stays what ``summary`` reports (``stopped_at``, ``converged``).
    """

    rule: StopRule
    extend: float = 1.0
    losses: list[float] = field(default_factory=list)  # every evaluation, in order
    best: list[float] = field(default_factory=list)  # b(n): the lowest loss among the first n
    converged: bool = False
    plateaus_at: list[int] = field(default_factory=list)  # evaluations at which each plateau was seen
    stopped_at: int | None = None  # evaluations when the rule stopped it (converged or the cap)
    stopped_now: bool = False  # the rule stopped it at the last update
    done: bool = False

    def __post_init__(self):
        if not self.extend >= 1:
            raise ValueError(f"extend={self.extend} must be >= 1")

    @property
    def evals(self) -> int:
        return len(self.losses)

    @property
    def plateau(self) -> int:
        """Plateaus seen so far: the optimiser's step size follows it."""
        return len(self.plateaus_at)

    @property
    def best_loss(self) -> float:
        return self.best[-1] if self.best else math.inf

    def update(self, loss: float) -> bool:
        """Record one evaluation; True when it is a new best. Sets ``done`` (and ``converged``)."""
        if self.done:
            raise RuntimeError("this optimisation already stopped")
        loss = float(loss)
        improved = math.isfinite(loss) and loss < self.best_loss
        self.losses.append(loss)
        self.best.append(loss if improved else self.best_loss)
        self.stopped_now = False
        n, w = self.evals, self.rule.window
        if self.stopped_at is None:
            since = self.plateaus_at[-1] if self.plateaus_at else 0  # each stage's window starts afresh
            if n - since > w and math.isfinite(self.best[n - 1 - w]):
                before = self.best[n - 1 - w]
                if before - self.best[-1] <= self.rule.tol * abs(before):
                    self.plateaus_at.append(n)
                    self.converged = self.plateau >= self.rule.plateaus
            if self.converged or n >= self.rule.max_evals:
                self.stopped_at, self.stopped_now = n, True
        if self.stopped_at is not None and n >= math.ceil(self.extend * self.stopped_at):
            self.done = True
        return improved

    def stop(self) -> None:
        """End it now (e.g. the loss became NaN): the rule's stop is here, not converged."""
        if self.stopped_at is None:
            self.stopped_at, self.stopped_now = self.evals, True
        self.done = True

    def summary(self) -> dict:
        """What a row records: evaluations the rule used, converged or stopped by the cap, the first
        and the best loss at the rule's stop (and, when extended, the evaluations and best loss at the end)."""
        at = self.stopped_at or self.evals
        out = {"evals": at, "converged": self.converged, "loss_initial": self.losses[0] if self.losses else None,
               "loss_final": self.best[at - 1] if at else math.inf}
        if self.extend > 1:
            out.update(evals_extended=self.evals, loss_final_extended=self.best_loss)
        return out
