"""Bootstrap intervals: coverage on simulated trials, pairing, and the brute-force loop."""
import numpy as np
import pytest

from topk_plugin.stats import bootstrap, paired_difference


def shape_bias(shape_hits, texture_hits):
    s, t = shape_hits.sum(-1), texture_hits.sum(-1)
    return s / (s + t)


def test_mean_interval_covers_a_binomial_proportion_at_the_nominal_rate():
    rng = np.random.default_rng(1)
    p, n, experiments = 0.3, 200, 400
    covered = 0
    for e in range(experiments):
        trials = rng.random(n) < p
        iv = bootstrap(trials, n_resamples=1000, seed=e)
        covered += iv.lo <= p <= iv.hi
    # percentile bootstrap of a proportion: nominal 0.95 (slightly below at n=200)
    assert 0.91 <= covered / experiments <= 0.975


def test_ratio_statistic_covers_the_true_shape_bias():
    # each trial is a shape decision (p 0.25), a texture decision (0.35) or neither
    rng = np.random.default_rng(2)
    truth = 0.25 / (0.25 + 0.35)
    covered, experiments = 0, 300
    for e in range(experiments):
        u = rng.random(300)
        shape, texture = u < 0.25, (u >= 0.25) & (u < 0.60)
        iv = bootstrap(shape, texture, statistic=shape_bias, n_resamples=1000, seed=e)
        assert iv.value == pytest.approx(shape.sum() / (shape.sum() + texture.sum()))
        covered += iv.lo <= truth <= iv.hi
    assert 0.91 <= covered / experiments <= 0.98


def test_vectorised_resampling_equals_the_brute_force_loop():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=37), rng.normal(size=37)
    got = paired_difference(a, b, n_resamples=500, level=0.9, seed=7)
    idx = np.random.default_rng(7).integers(0, 37, size=(500, 37))
    diffs = [a[row].mean() - b[row].mean() for row in idx]
    assert got.value == pytest.approx(a.mean() - b.mean())
    assert got.lo == pytest.approx(np.quantile(diffs, 0.05))
    assert got.hi == pytest.approx(np.quantile(diffs, 0.95))
    assert got.n == 37


def test_agrees_with_scipy_percentile_bootstrap():
    scipy_stats = pytest.importorskip("scipy.stats")
    x = np.random.default_rng(4).exponential(size=400)
    ours = bootstrap(x, n_resamples=4000)
    ref = scipy_stats.bootstrap((x,), np.mean, n_resamples=4000, method="percentile",
                                random_state=np.random.default_rng(5)).confidence_interval
    width = ours.hi - ours.lo
    assert abs(ours.lo - ref.low) < 0.1 * width and abs(ours.hi - ref.high) < 0.1 * width


def test_a_setting_paired_with_itself_has_a_zero_interval():
    x = np.random.default_rng(5).random(50)
    assert paired_difference(x, x).ci == [0.0, 0.0]
    s = np.arange(50) % 3 == 0
    t = np.arange(50) % 3 == 1
    iv = paired_difference((s, t), (s, t), statistic=shape_bias)
    assert (iv.value, iv.lo, iv.hi) == (0.0, 0.0, 0.0)


def test_pairing_narrows_the_interval_of_a_shift_shared_by_all_images():
    rng = np.random.default_rng(6)
    base = rng.normal(scale=5.0, size=100)
    shifted = base + 0.3 + rng.normal(scale=0.05, size=100)
    paired = paired_difference(shifted, base)
    assert paired.lo > 0.25 and paired.hi < 0.35 and paired.excludes_zero() == 1
    unpaired_width = (bootstrap(shifted).hi - bootstrap(shifted).lo)
    assert paired.hi - paired.lo < unpaired_width / 10


def test_seeded_and_reproducible():
    x = np.random.default_rng(7).random(30)
    assert bootstrap(x, seed=3) == bootstrap(x, seed=3)
    assert bootstrap(x, seed=3) != bootstrap(x, seed=4)


@pytest.mark.parametrize(
    "arrays, kwargs, message",
    [
        (([],), {}, "no images"),
        (([1.0, 2.0], [1.0]), {}, "one value per image"),
        (([[1.0, 2.0]],), {}, "1-D"),
        (([1.0, float("nan")],), {}, "NaN"),
        (([1.0, 2.0],), {"level": 95}, "level"),
        (([1.0, 2.0],), {"n_resamples": 0}, "n_resamples"),
    ],
)
def test_bad_input_names_the_problem(arrays, kwargs, message):
    with pytest.raises(ValueError, match=message):
        bootstrap(*arrays, **kwargs)


def test_resamples_where_the_statistic_is_undefined_are_left_out():
    def ratio(s, t):
        total = s.sum(-1) + t.sum(-1)
        return np.divide(s.sum(-1), total, out=np.full(np.shape(total), np.nan), where=total > 0)

    shape = np.array([1.0, 0, 0, 0])
    texture = np.array([0.0, 1, 0, 0])  # many resamples hold neither decision
    iv = bootstrap(shape, texture, statistic=ratio)
    assert iv.value == 0.5 and iv.lo == 0.0 and iv.hi == 1.0
    never = bootstrap(np.zeros(4), np.zeros(4), statistic=ratio)
    assert np.isnan(never.value) and np.isnan(never.lo) and np.isnan(never.hi)


def _brute_force(arrays, statistic, n_resamples, seed, level=0.95):
    """Today's definition, written plainly: one (n_resamples, n) draw, the statistic per row, float64."""
    n = len(arrays[0])
    idx = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    values = np.array([float(statistic(*(np.asarray(a, dtype=np.float64)[row] for a in arrays))) for row in idx])
    values = values[~np.isnan(values)]
    return np.quantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])


def test_a_user_statistic_sees_the_values_it_was_given():
    """0/1 arrays once reached the statistic as uint8, so a - b wrapped around (255)."""
    rng = np.random.default_rng(8)
    a, b = (rng.random(300) < 0.6).astype(float), (rng.random(300) < 0.5).astype(float)
    def diff(x, y):
        return (x - y).mean(-1)
    iv = bootstrap(a, b, statistic=diff, n_resamples=500)
    assert iv.value == pytest.approx(a.mean() - b.mean())
    assert iv.lo <= iv.value <= iv.hi and -1 <= iv.lo and iv.hi <= 1
    assert np.allclose([iv.lo, iv.hi], _brute_force((a, b), diff, 500, 0))


def test_chunked_and_uncached_draws_give_the_same_interval(monkeypatch):
    import topk_plugin.stats as stats

    rng = np.random.default_rng(9)
    s, t = rng.random(257) < 0.3, rng.random(257) < 0.4
    whole = bootstrap(s, t, statistic=shape_bias, n_resamples=300, seed=3)
    monkeypatch.setattr(stats, "_CHUNK_ENTRIES", 1000)  # 3 resamples per chunk
    monkeypatch.setattr(stats, "_CACHE_MAX_ENTRIES", 0)  # draw anew
    chunked = bootstrap(s, t, statistic=shape_bias, n_resamples=300, seed=3)
    assert (chunked.lo, chunked.hi) == (whole.lo, whole.hi)
    assert np.allclose([whole.lo, whole.hi], _brute_force((s, t), shape_bias, 300, 3))


def test_memory_stays_bounded_at_imagenet_validation_size():
    import tracemalloc

    rng = np.random.default_rng(10)
    hits, dense = rng.random(50_000) < 0.7, rng.random(50_000) < 0.75
    tracemalloc.start()
    try:
        iv = paired_difference(hits, dense)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 150 * 2**20, f"peak {peak / 2**20:.0f} MiB"  # one (2000, 50000) int64 matrix alone is 763 MiB
    assert iv.lo <= iv.value <= iv.hi and iv.hi - iv.lo < 0.03
