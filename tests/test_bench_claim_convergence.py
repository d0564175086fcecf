"""The rule check of ``benchmarks/bench_claim_convergence.py`` reads several stop rules off one L-BFGS run.
That is only a check of those rules if each reading equals the run the rule itself would make: tested here
against ``minimize_lbfgs`` under each rule, on a small smooth loss."""
import argparse
import importlib.util
from pathlib import Path

import pytest
import torch

from topk_plugin.analysis.convergence import StopRule
from topk_plugin.analysis.optimize import minimize_lbfgs

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_claim_convergence.py"
SHAPE = (1, 3, 6, 6)


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_claim_convergence", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _loss(image: torch.Tensor) -> torch.Tensor:
    """Smooth, ill-conditioned and not quadratic in the optimised ``z``: L-BFGS takes many evaluations."""
    target = torch.linspace(0.1, 0.9, image.numel()).view(image.shape)
    weights = torch.logspace(-3, 0, image.numel()).view(image.shape)
    return (weights * (image - target).pow(2)).sum() + 0.01 * image.sum().pow(2)


RULES = [StopRule(tol=1e-2, window=5, max_evals=200, plateaus=1), StopRule(tol=1e-3, window=10, max_evals=200),
         StopRule(tol=0.0, window=1000, max_evals=40)]


def test_each_rule_read_off_the_shared_run_is_that_rules_own_run(bench):
    read = bench.lbfgs_under_rules(_loss, SHAPE, RULES, lr=1.0, seed=3)
    stops = []
    for rule, (summary, at_stop, twice) in zip(RULES, read, strict=True):
        image, tracker = minimize_lbfgs(_loss, SHAPE, rule=rule, lr=1.0, seed=3)
        own = tracker.summary()
        assert {k: summary[k] for k in own} == own
        torch.testing.assert_close(at_stop, image, rtol=0, atol=0)
        # twice as long: the same run on to twice the evaluations (a rule that only caps there)
        longer, _ = minimize_lbfgs(_loss, SHAPE, rule=StopRule(tol=0.0, window=10**6, max_evals=2 * own["evals"]),
                                   lr=1.0, seed=3)
        torch.testing.assert_close(twice, longer, rtol=0, atol=0)
        assert summary["evals_extended"] == 2 * own["evals"]
        assert float(_loss(twice)) <= float(_loss(at_stop))
        stops.append(own["evals"])
    assert len(set(stops)) == len(RULES), f"the rules should stop at different evaluations to test anything: {stops}"
    assert [summary["converged"] for summary, _, _ in read] == [True, True, False]


def test_several_rules_need_lbfgs(bench):
    """Adam's path depends on its rule (its steps shrink at each plateau): one rule per run."""
    args = argparse.Namespace(part="rule", optimizer="adam", tol=[2e-3, 5e-4], window=[50], max_evals=[1200],
                              plateaus=2)
    with pytest.raises(SystemExit, match="only `rule --optimizer lbfgs`"):
        bench.rules_of(args)
    assert len(bench.rules_of(argparse.Namespace(**{**vars(args), "optimizer": "lbfgs"}))) == 2
