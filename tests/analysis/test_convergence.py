"""The stop rule (issue 27): where it stops on a loss whose course is known in closed form, the cap,
and the optimisers' bookkeeping (evaluations counted, the best iterate returned)."""
import math

import pytest
import torch

from topk_plugin.analysis.convergence import StopRule, Tracker
from topk_plugin.analysis.optimize import initial_noise, minimize_batch, minimize_lbfgs

# gradient descent on f(x) = F_STAR + A/2 (x - 1)^2 from x = 0 with step LR:
# the loss before step j is F_STAR + A/2 q^j with q = (1 - LR A)^2
F_STAR, A, LR = 0.5, 2.0, 0.05


def _gd_losses():
    """Yield the loss of real gradient descent on the quadratic, one evaluation per step."""
    x = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([x], lr=LR)
    while True:
        opt.zero_grad()
        loss = F_STAR + A / 2 * (x - 1) ** 2
        loss.backward()
        yield float(loss.detach())
        opt.step()


def _predicted_stop(tol: float, window: int, plateaus: int = 1) -> int:
    """The evaluation at which ``b(n - w) - b(n) <= tol * b(n - w)`` first holds, solved on paper:
    with e_j = A/2 q^j (the loss is decreasing, so b is the loss) the condition at n = j + 1 + w is
    e_j (1 - q^w - tol) <= tol * F_STAR. It keeps holding after that (the relative improvement only
    shrinks), so each further plateau comes as soon as a fresh window has passed: w + 1 later."""
    q = (1 - LR * A) ** 2
    j = math.ceil(math.log(tol * F_STAR / ((1 - q**window - tol) * A / 2)) / math.log(q))
    return max(j, 0) + 1 + window + (plateaus - 1) * (window + 1)


@pytest.mark.parametrize("tol, window, plateaus", [(1e-3, 10, 1), (1e-4, 25, 3), (1e-2, 1, 2)])
def test_rule_stops_on_a_quadratic_at_the_predicted_evaluation(tol, window, plateaus):
    tracker = Tracker(StopRule(tol=tol, window=window, max_evals=10_000, plateaus=plateaus))
    for loss in _gd_losses():
        tracker.update(loss)
        if tracker.done:
            break
    assert tracker.converged
    assert tracker.plateaus_at == [_predicted_stop(tol, window, p) for p in range(1, plateaus + 1)]
    assert tracker.evals == _predicted_stop(tol, window, plateaus)


def test_rule_reports_non_convergence_at_the_cap():
    """Without a floor (F_STAR 0) the relative improvement per window stays 1 - q^w: never below tol."""
    tracker = Tracker(StopRule(tol=1e-3, window=10, max_evals=300))
    x = 1.0
    while not tracker.done:
        tracker.update(x)
        x *= 0.99
    assert tracker.evals == 300 and not tracker.converged
    assert tracker.summary() == {"evals": 300, "converged": False, "loss_initial": 1.0, "loss_final": pytest.approx(0.99**299)}


def test_rule_reads_the_best_loss_so_noise_neither_stops_nor_prolongs():
    """A spike above the best loss is not an improvement; a drop back to the best is not either."""
    tracker = Tracker(StopRule(tol=0.01, window=3, max_evals=100, plateaus=1))
    for loss in [10.0, 5.0, 50.0, 5.0, 4.99]:
        tracker.update(loss)
    assert tracker.best == [10.0, 5.0, 5.0, 5.0, 4.99]
    assert tracker.done and tracker.converged  # 5.0 -> 4.99 over the last 3 evaluations: 0.2% < 1%
    with pytest.raises(RuntimeError, match="already stopped"):
        tracker.update(1.0)


@pytest.mark.parametrize("kwargs, message", [({"tol": 1.0}, "tol"), ({"window": 0}, "window"),
                                             ({"max_evals": 0}, "max_evals"), ({"plateaus": 0}, "plateaus")])
def test_rule_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StopRule(**kwargs)


def _quadratic_rows(targets):
    """objective(images, rows): a quadratic per row, pulling row r towards ``targets[r]``."""
    calls = []

    def objective(images, rows):
        calls.append(list(rows))
        return (images - targets[rows]).pow(2).flatten(1).sum(1)

    return objective, calls


def test_adam_counts_evaluations_per_row_and_returns_each_rows_best_iterate():
    shape = (1, 3, 4, 4)
    targets = torch.stack([torch.full(shape[1:], v) for v in (0.2, 0.5, 0.9)])
    objective, calls = _quadratic_rows(targets)
    rule = StopRule(tol=1e-3, window=5, max_evals=400)
    result = minimize_batch(objective, 3, shape, rule=rule, lr=0.05)
    for r, tracker in enumerate(result.trackers):
        assert tracker.evals == sum(r in c for c in calls)  # one evaluation per call while active
        assert tracker.done
        best = (result.images[r] - targets[r]).pow(2).sum()
        assert float(best) == pytest.approx(tracker.best_loss, rel=1e-5)  # the image returned is the best one
        assert tracker.best_loss == min(tracker.losses)
    assert calls[-1] != [0, 1, 2]  # rows left the batch as they stopped


def test_lbfgs_counts_every_evaluation_and_stops_by_the_rule():
    shape = (1, 3, 4, 4)
    target = torch.rand(shape, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1
    evaluations = []

    def loss_fn(image):
        evaluations.append(1)
        return (image - target).pow(2).sum()

    image, tracker = minimize_lbfgs(loss_fn, shape, rule=StopRule(tol=1e-6, window=10, max_evals=500))
    assert tracker.converged and tracker.evals == len(evaluations) < 500
    assert float((image - target).pow(2).sum()) == pytest.approx(tracker.best_loss, rel=1e-5)
    assert tracker.best_loss < 1e-6  # a quadratic: L-BFGS gets there
    _, capped = minimize_lbfgs(loss_fn, shape, rule=StopRule(tol=0.0, window=10, max_evals=7))
    assert capped.evals == 7 and not capped.converged


def test_every_row_starts_from_the_same_seeded_noise():
    shape = (1, 3, 5, 5)
    objective, _ = _quadratic_rows(torch.zeros(2, *shape[1:]))
    first = minimize_batch(objective, 2, shape, rule=StopRule(max_evals=1), seed=7)  # one evaluation: the start
    expected = torch.sigmoid(initial_noise(shape, 7))
    # (sigmoid of a 2-row and a 1-row tensor may round differently in the last bit)
    torch.testing.assert_close(first.images, expected.expand(2, -1, -1, -1), rtol=0, atol=1e-7)
    assert not torch.equal(torch.sigmoid(initial_noise(shape, 8)), expected)


def test_extend_runs_on_past_the_rules_stop_and_keeps_the_image_at_the_stop():
    """``extend=2``: the rule's stop is still what is reported; the run goes on to twice its evaluations."""
    tol, window = 1e-3, 10
    tracker = Tracker(StopRule(tol=tol, window=window, max_evals=10_000, plateaus=1), extend=2)
    for loss in _gd_losses():
        tracker.update(loss)
        if tracker.done:
            break
    n = _predicted_stop(tol, window)
    assert (tracker.stopped_at, tracker.evals, tracker.converged) == (n, 2 * n, True)
    summary = tracker.summary()
    assert summary["evals"] == n and summary["evals_extended"] == 2 * n
    assert summary["loss_final"] == tracker.best[n - 1] > summary["loss_final_extended"] == tracker.best_loss

    shape = (1, 3, 4, 4)
    targets = torch.stack([torch.full(shape[1:], v) for v in (0.2, 0.9)])
    objective, _ = _quadratic_rows(targets)
    rule = StopRule(tol=1e-3, window=5, max_evals=60)
    plain = minimize_batch(objective, 2, shape, rule=rule)
    longer = minimize_batch(objective, 2, shape, rule=rule, extend=2)
    assert plain.extended is None
    assert torch.equal(longer.images, plain.images)  # the same image at the rule's stop
    for a, b in zip(plain.trackers, longer.trackers, strict=True):
        assert b.summary()["evals"] == a.evals and b.evals == 2 * a.evals
        assert b.losses[: a.evals] == a.losses
    losses_longer = (longer.extended - targets).pow(2).flatten(1).sum(1)
    assert losses_longer.tolist() == pytest.approx([t.best_loss for t in longer.trackers], rel=1e-5)
