"""Shape-bias and top-1 intervals: against a brute-force bootstrap, pairing, and resampling by image."""
import numpy as np
import pytest

from topk_plugin.shape_bias.intervals import cue_conflict_intervals, top1_intervals, trial_intervals
from topk_plugin.shape_bias.metrics import Trial, shape_bias

CATS = ["cat", "dog", "car", "boat"]


def simulated(n=300, seed=0):
    rng = np.random.default_rng(seed)
    labels = [(CATS[rng.integers(4)], CATS[rng.integers(4)]) for _ in range(n)]
    decisions = [s if u < 0.3 else t if u < 0.6 else "knife" for (s, t), u in zip(labels, rng.random(n), strict=True)]
    return decisions, labels


def brute_force_shape_bias_ci(decisions, labels, seed=0, n_resamples=2000):
    conflict = [(d, s, t) for d, (s, t) in zip(decisions, labels, strict=True) if s != t]
    idx = np.random.default_rng(seed).integers(0, len(conflict), size=(n_resamples, len(conflict)))
    values = []
    for row in idx:
        picked = [conflict[i] for i in row]
        s = sum(d == sh for d, sh, _ in picked)
        t = sum(d == tx for d, _, tx in picked)
        values.append(s / (s + t))
    return list(np.quantile(values, [0.025, 0.975]))


def test_shape_bias_interval_equals_the_brute_force_bootstrap():
    decisions, labels = simulated()
    got = cue_conflict_intervals(decisions, labels)
    assert got["shape_bias_ci"] == pytest.approx(brute_force_shape_bias_ci(decisions, labels))
    value = shape_bias([Trial(str(i), s, t, d) for i, (d, (s, t)) in enumerate(zip(decisions, labels, strict=True))]).shape_bias
    lo, hi = got["shape_bias_ci"]
    assert lo < value < hi and 0.02 < hi - lo < 0.2


def test_a_setting_against_itself_has_zero_differences():
    decisions, labels = simulated()
    got = cue_conflict_intervals(decisions, labels, dense_decisions=decisions)
    assert got["delta_shape_bias"] == 0.0 and got["delta_shape_bias_ci"] == [0.0, 0.0]
    hits = np.random.default_rng(1).random(100) < 0.6
    assert top1_intervals(hits, hits)["delta_top1_ci"] == [0.0, 0.0]


def test_paired_difference_sees_a_consistent_change():
    decisions, labels = simulated(600)
    shape_everywhere = [s for s, _ in labels]  # every conflict image decided by shape
    got = cue_conflict_intervals(shape_everywhere, labels, dense_decisions=decisions)
    assert got["delta_shape_bias_ci"][0] > 0.3
    hits = np.arange(200) % 2 == 0
    better = hits | (np.arange(200) % 4 == 1)
    top = top1_intervals(better, hits)
    assert top["delta_top1"] == pytest.approx(0.25) and top["delta_top1_ci"][0] > 0.15


def test_pooled_subjects_are_resampled_by_image():
    decisions, labels = simulated(200)
    one = [Trial(f"im{i}.png", s, t, d, "s1") for i, (d, (s, t)) in enumerate(zip(decisions, labels, strict=True))]
    ten = [Trial(tr.image, tr.shape, tr.texture, tr.decision, f"s{k}") for k in range(10) for tr in one]
    # ten identical subjects carry no more information about the images than one
    assert trial_intervals(ten)["shape_bias_ci"] == pytest.approx(trial_intervals(one)["shape_bias_ci"])
    assert trial_intervals(one)["shape_bias_ci"] == pytest.approx(cue_conflict_intervals(decisions, labels)["shape_bias_ci"])


def test_mismatched_inputs_are_an_error():
    with pytest.raises(ValueError, match="3 decisions for 2 labelled images"):
        cue_conflict_intervals(["a", "b", "c"], [("a", "b"), ("b", "c")])


def test_the_shape_bias_figure_draws_the_intervals(tmp_path):
    from topk_plugin.shape_bias.plot import plot_shape_bias

    decisions, labels = simulated()
    trials = [Trial(f"{s}{i}-{t}1.png", s, t, d) for i, (d, (s, t)) in enumerate(zip(decisions, labels, strict=True))]
    result = shape_bias(trials, "sim")
    band = cue_conflict_intervals(decisions, labels)["shape_bias_ci"]
    paths = plot_shape_bias([result, result], tmp_path / "sb.png", intervals=[band, [float("nan")] * 2])
    assert all(p.stat().st_size > 0 for p in paths)
    with pytest.raises(ValueError, match="1 intervals for 2 results"):
        plot_shape_bias([result, result], tmp_path / "x.png", intervals=[band])
