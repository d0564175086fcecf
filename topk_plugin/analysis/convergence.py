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
``window`` evaluations. The lowest loss, not the last one, so Adam's
oscillations and L-BFGS's trial points of the line search neither stop a
run early nor keep it alive. It stops at ``max_evals`` at the latest and is
then recorded as not converged. The result of a run is its best iterate.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

__all__ = ["StopRule", "Tracker"]


@dataclass(frozen=True)
class StopRule:
    """Stop when the best loss improved by at most ``tol`` (relative) over the last ``window``
    evaluations, or after ``max_evals`` evaluations (then not converged)."""

    tol: float = 1e-3
    window: int = 100
    max_evals: int = 3000

    def __post_init__(self):
        if not 0 <= self.tol < 1:
            raise ValueError(f"tol={self.tol} must be in [0, 1): a relative improvement of the loss")
        if self.window < 1:
            raise ValueError(f"window={self.window} must be >= 1 evaluation")
        if self.max_evals < 1:
            raise ValueError(f"max_evals={self.max_evals} must be >= 1")

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Tracker:
    """One optimisation under a ``StopRule``: feed it every loss evaluation with ``update``."""

    rule: StopRule
    losses: list[float] = field(default_factory=list)  # every evaluation, in order
    best: list[float] = field(default_factory=list)  # b(n): the lowest loss among the first n
    converged: bool = False
    done: bool = False

    @property
    def evals(self) -> int:
        return len(self.losses)

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
        n, w = self.evals, self.rule.window
        if n > w and math.isfinite(self.best[n - 1 - w]):
            before = self.best[n - 1 - w]
            if before - self.best[-1] <= self.rule.tol * abs(before):
                self.converged = self.done = True
        if n >= self.rule.max_evals:
            self.done = True
        return improved

    def summary(self) -> dict:
        """What a row records: evaluations used, converged or stopped by the cap, the losses."""
        return {"evals": self.evals, "converged": self.converged, "loss_initial": self.losses[0] if self.losses else None,
                "loss_final": self.best_loss}
