"""Accuracy and error consistency as model-vs-human computes them, against hand computations and the published
human numbers (SPEC section 3)."""
import itertools

import numpy as np
import pytest

from topk_plugin.shape_bias.consistency import kappa, mean_consistency
from topk_plugin.shape_bias.humans import human_trials, load_humans
from topk_plugin.shape_bias.imagenames import image_id
from topk_plugin.shape_bias.metrics import Trial
from topk_plugin.shape_bias.mvh_csv import read_trials
from topk_plugin.shape_bias.shape_only_scores import human_reference, setting_scores, trials_scores

RAW = "data/modelvshuman-raw"


def _model_vs_human_kappa(a, b) -> float:
    """model-vs-human's ErrorConsistency.analysis, transcribed: SixteenClassAccuracy of each, then Cohen's kappa."""
    p1, p2 = sum(a) / len(a), sum(b) / len(b)
    expected = p1 * p2 + (1 - p1) * (1 - p2)
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / len(a)
    return 1.0 if observed == 1.0 else (observed - expected) / (1.0 - expected)


def test_kappa_by_hand():
    a = [1, 1, 0, 0, 1]  # accuracy 0.6
    b = [1, 0, 0, 1, 1]  # accuracy 0.6; both right or both wrong on images 0, 2, 4: c_obs = 0.6
    # c_exp = 0.6 * 0.6 + 0.4 * 0.4 = 0.52; kappa = (0.6 - 0.52) / 0.48 = 1/6
    assert kappa(a, b) == pytest.approx(1 / 6, abs=1e-12)
    assert kappa(a, a) == 1.0  # identical observers
    assert kappa(a, [1] * 5) == pytest.approx(0.0, abs=1e-12)  # against an observer who is always right
    assert kappa(a, [0] * 5) == pytest.approx(0.0, abs=1e-12)  # ... or always wrong
    assert kappa(a, [1 - x for x in a]) == pytest.approx(-12 / 13, abs=1e-12)  # c_obs 0, c_exp 0.48
    assert kappa([1, 1, 1], [1, 1, 1]) == 1.0 and kappa([0, 0], [0, 0]) == 1.0  # c_exp = 1: defined as 1


def test_kappa_matches_model_vs_humans_formula_on_random_observers():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 30))
        a, b = (rng.random(n) < rng.random()).astype(int), (rng.random(n) < rng.random()).astype(int)
        assert kappa(a, b) == pytest.approx(_model_vs_human_kappa(list(a), list(b)), abs=1e-12)


def test_mean_consistency_is_the_mean_over_subjects_and_pairs():
    rng = np.random.default_rng(1)
    model = (rng.random(40) < 0.5).astype(float)
    subjects = (rng.random((5, 40)) < 0.7).astype(float)
    assert mean_consistency(model[None], subjects) == pytest.approx(np.mean([kappa(model, s) for s in subjects]))
    pairs = [kappa(a, b) for a, b in itertools.combinations(subjects, 2)]
    assert mean_consistency(subjects, subjects, np.eye(5, dtype=bool)) == pytest.approx(np.mean(pairs))
    # resampled axes in the middle are kept: each resample on its own
    stacked = np.stack([subjects, subjects[:, ::-1]], axis=1)  # (S, 2, n)
    both = mean_consistency(stacked, stacked, np.eye(5, dtype=bool))
    assert both.shape == (2,) and both[0] == pytest.approx(np.mean(pairs)) and both[1] == pytest.approx(np.mean(pairs))


def _trials(subject, answers):
    """Trials on five edge stimuli; ``answers`` per stimulus, None for 'na'."""
    names = ["oven1.png", "oven2.png", "car1.png", "car2.png", "dog1.png"]
    truth = ["oven", "oven", "car", "car", "dog"]
    return [Trial(f"{i + 1:04d}_edg_s01_0_{c}_00_{n}", c, c, a, subject)
            for i, (n, c, a) in enumerate(zip(names, truth, answers, strict=True))]


def test_scores_by_hand_on_a_few_trials():
    humans = human_trials("edge", _trials("subject-01", ["oven", "oven", "car", "dog", None])  # right: 1 1 1 0 0
                          + _trials("subject-02", ["oven", "knife", "car", "car", "dog"]))  # right: 1 0 1 1 1
    assert humans.subjects == ["subject-01", "subject-02"]
    assert humans.ids == ["car1.png", "car2.png", "dog1.png", "oven1.png", "oven2.png"]
    # a model, in its own image order and with plain file names
    names = ["dog1.png", "oven1.png", "oven2.png", "car1.png", "car2.png"]
    categories = ["dog", "oven", "oven", "car", "car"]
    decisions = ["cat", "oven", "oven", "car", "truck"]  # right: 0 1 1 1 0 -> per id (car1 car2 dog1 oven1 oven2): 1 0 0 1 1
    row = setting_scores(decisions, names, categories, humans=humans)
    assert row["accuracy"] == pytest.approx(0.6)
    k1 = float(kappa([1, 0, 0, 1, 1], [1, 0, 0, 1, 1]))  # subject-01 per id: car1 1, car2 0, dog1 0, oven1 1, oven2 1
    k2 = float(kappa([1, 0, 0, 1, 1], [1, 1, 1, 1, 0]))  # (floats: pytest 9.2's approx refuses 0-d arrays in a dict)
    assert k1 == 1.0 and row["error_consistency_per_subject"] == pytest.approx({"subject-01": k1, "subject-02": k2})
    assert row["error_consistency"] == pytest.approx((k1 + k2) / 2)
    lo, hi = row["error_consistency_ci"]
    assert lo <= row["error_consistency"] <= hi
    # beside a dense model on the same images: paired differences
    dense = ["dog", "oven", "oven", "car", "truck"]
    paired = setting_scores(decisions, names, categories, dense_decisions=dense, humans=humans)
    assert paired["delta_accuracy"] == pytest.approx(-0.2)
    dense_k = np.mean([kappa([1, 0, 1, 1, 1], h) for h in humans.correct])
    assert paired["delta_error_consistency"] == pytest.approx(row["error_consistency"] - dense_k)
    same = setting_scores(decisions, names, categories, dense_decisions=decisions, humans=humans)
    assert same["delta_accuracy_ci"] == [0.0, 0.0] and same["delta_error_consistency_ci"] == [0.0, 0.0]
    reference = human_reference(humans)
    assert reference["accuracy"] == pytest.approx(0.7)  # 7 of 10 trials ('na' is wrong)
    assert reference["error_consistency"] == pytest.approx(kappa([1, 0, 0, 1, 1], [1, 1, 1, 1, 0]))


def test_humans_must_see_the_same_images():
    with pytest.raises(ValueError, match="subject-02"):
        human_trials("edge", _trials("subject-01", ["oven"] * 5) + _trials("subject-02", ["oven"] * 5)[:4])
    with pytest.raises(ValueError, match="two trials"):
        human_trials("edge", _trials("subject-01", ["oven"] * 5) * 2)
    humans = human_trials("edge", _trials("subject-01", ["oven"] * 5) + _trials("alexnet", ["oven"] * 5))
    assert humans.subjects == ["subject-01"]  # only subject-* observers are humans
    with pytest.raises(ValueError, match="not on the same images"):
        setting_scores(["oven"] * 4, ["oven1.png", "oven2.png", "car1.png", "car9.png"], ["oven", "oven", "car", "car"],
                       humans=humans)


@pytest.mark.parametrize("dataset, accuracy, consistency", [("edge", 0.8713, 0.3184), ("silhouette", 0.7531, 0.4757)])
def test_the_ten_subjects_from_shared(shared_dir, dataset, accuracy, consistency):
    """Pooled accuracy and the mean kappa over the 45 subject pairs, read from ../shared and from the package."""
    files = sorted((shared_dir / RAW / dataset).glob("*.csv"))
    assert len(files) == 10
    trials = [t for f in files for t in read_trials(f)]
    pooled = sum(t.decision == t.shape for t in trials) / len(trials)
    assert pooled == pytest.approx(accuracy, abs=5e-5)
    assert round(pooled, 3) == {"edge": 0.871, "silhouette": 0.753}[dataset]
    for humans in (load_humans(dataset, files), load_humans(dataset)):  # ../shared, the package's copies
        assert len(humans.subjects) == 10 and len(humans.ids) == 160
        row = human_reference(humans)
        assert row["accuracy"] == pytest.approx(accuracy, abs=5e-5)
        assert row["error_consistency"] == pytest.approx(consistency, abs=5e-5)
        lo, hi = row["error_consistency_ci"]
        assert lo < consistency < hi
    by_pairs = []
    per_subject = {f.name: {image_id(t.image): t.decision == t.shape for t in read_trials(f)} for f in files}
    for a, b in itertools.combinations(per_subject.values(), 2):
        keys = sorted(a)
        by_pairs.append(_model_vs_human_kappa([a[k] for k in keys], [b[k] for k in keys]))
    assert len(by_pairs) == 45 and np.mean(by_pairs) == pytest.approx(consistency, abs=5e-5)
    # scoring the subjects' CSVs as observers gives the same: each against the other nine
    scored = trials_scores(trials, load_humans(dataset))
    assert scored["accuracy"] == pytest.approx(accuracy, abs=5e-5)
    assert scored["error_consistency"] == pytest.approx(consistency, abs=5e-5)


def test_sketch_and_stylized_humans_from_a_raw_data_folder(shared_dir):
    for dataset, subjects in (("sketch", 7), ("stylized", 5)):
        humans = load_humans(dataset, [shared_dir / RAW])  # model-vs-human's raw-data/ layout: <dataset>/ inside
        assert len(humans.subjects) == subjects and len(humans.ids) == 800
        assert load_humans(dataset) is None  # not shipped


def test_a_texture_vs_shape_model_against_the_humans(shared_dir):
    """AlexNet's edge trials (texture-vs-shape) scored as model-vs-human would: accuracy and mean kappa."""
    trials = read_trials(shared_dir / "data/texture-vs-shape-raw/edge-experiment_alexnet_session_1.csv")
    humans = load_humans("edge")
    row = trials_scores(trials, humans)
    mine = {image_id(t.image): t.decision == t.shape for t in trials}
    expected = np.mean([_model_vs_human_kappa([mine[i] for i in humans.ids], list(h)) for h in humans.correct])
    assert row["accuracy"] == pytest.approx(sum(mine.values()) / 160)
    assert row["error_consistency"] == pytest.approx(expected, abs=1e-12)
