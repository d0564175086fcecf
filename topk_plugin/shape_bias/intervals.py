"""Intervals for the numbers the evaluations print: shape bias, shape-or-texture and top-1.

Why: 1200 cue-conflict trials leave a standard error of 0.015-0.02 on a shape
bias (a 95% interval of about ±0.03), and two settings compared on the same images need the interval of
their *difference*, not two overlapping intervals. All intervals are 95%
percentile bootstraps over images (2000 resamples, seed 0; ``topk_plugin.stats``):

* ``shape_bias_ci``: the conflict images (shape != texture) are resampled and
  ``shape hits / (shape + texture hits)`` recomputed;
* ``shape_or_texture_ci``: the fraction of conflict images decided as shape or texture;
* ``imagenet_top1_ci``: the ImageNet images are resampled;
* ``delta_shape_bias`` / ``delta_top1`` with ``*_ci``: setting minus dense,
  both resampled with the same images (paired).
"""
from __future__ import annotations

import numpy as np

from ..stats import bootstrap, paired_difference

__all__ = ["conflict_counts", "trial_counts", "shape_bias_of", "cue_conflict_intervals", "trial_intervals",
           "top1_intervals", "format_field"]


def conflict_counts(decisions, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per conflict image (shape != texture): (shape hits, texture hits, trials), one trial each.

    ``decisions`` and ``labels`` (``(shape, texture)`` pairs) are in the same image order.
    """
    decisions, labels = list(decisions), list(labels)
    if len(decisions) != len(labels):
        raise ValueError(f"{len(decisions)} decisions for {len(labels)} labelled images")
    pairs = [(d, s, t) for d, (s, t) in zip(decisions, labels, strict=True) if s != t]
    shape = np.array([d == s for d, s, _ in pairs], dtype=np.float64)
    texture = np.array([d == t for d, _, t in pairs], dtype=np.float64)
    return shape, texture, np.ones_like(shape)


def trial_counts(trials) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``conflict_counts`` for ``Trial`` lists in which an image may have several
    trials (several subjects): counts are summed per image, so the image is
    what gets resampled (a cluster bootstrap)."""
    per_image: dict[str, list[int]] = {}
    for tr in trials:
        if tr.shape == tr.texture:
            continue
        c = per_image.setdefault(tr.image, [0, 0, 0])
        c[0] += tr.decision == tr.shape
        c[1] += tr.decision == tr.texture
        c[2] += 1
    counts = np.array(list(per_image.values()), dtype=np.float64).reshape(-1, 3)
    return counts[:, 0], counts[:, 1], counts[:, 2]


def shape_bias_of(shape: np.ndarray, texture: np.ndarray) -> np.ndarray:
    """Shape hits / (shape + texture hits) along the last axis; NaN where neither was ever chosen."""
    s, t = shape.sum(-1), texture.sum(-1)
    total = s + t
    return np.divide(s, total, out=np.full(np.shape(total), np.nan), where=total > 0)


def _ratio_of_sums(hits: np.ndarray, trials: np.ndarray) -> np.ndarray:
    return hits.sum(-1) / trials.sum(-1)


def _intervals(counts, dense_counts, seed: int) -> dict:
    shape, texture, trials = counts
    if not len(shape):
        return {}
    # only the arrays a statistic needs are resampled (the gathers are most of the cost)
    decided = shape + texture
    fraction = (bootstrap(decided, seed=seed) if np.all(trials == 1)
                else bootstrap(decided, trials, statistic=_ratio_of_sums, seed=seed))
    out = {
        "shape_bias_ci": bootstrap(shape, texture, statistic=shape_bias_of, seed=seed).ci,
        "shape_or_texture_ci": fraction.ci,
    }
    if dense_counts is not None:
        delta = paired_difference((shape, texture), tuple(dense_counts[:2]), statistic=shape_bias_of, seed=seed)
        out.update(delta_shape_bias=delta.value, delta_shape_bias_ci=delta.ci)
    return out


def cue_conflict_intervals(decisions, labels, dense_decisions=None, *, seed: int = 0) -> dict:
    """``shape_bias_ci``, ``shape_or_texture_ci`` and, given the dense model's
    decisions on the same images, ``delta_shape_bias`` and its ``_ci``."""
    dense = None if dense_decisions is None else conflict_counts(dense_decisions, labels)
    return _intervals(conflict_counts(decisions, labels), dense, seed)


def trial_intervals(trials, *, seed: int = 0) -> dict:
    """``shape_bias_ci`` and ``shape_or_texture_ci`` of pooled trials (e.g. model-vs-human CSVs), by image."""
    return _intervals(trial_counts(trials), None, seed)


def top1_intervals(hits, dense_hits=None, *, seed: int = 0) -> dict:
    """``imagenet_top1_ci`` and, given the dense model's hits on the same images,
    ``delta_top1`` (setting minus dense, as a fraction) and its ``_ci``."""
    hits = np.asarray(hits, dtype=np.float64)
    if not len(hits):
        return {}
    out = {"imagenet_top1_ci": bootstrap(hits, seed=seed).ci}
    if dense_hits is not None:
        delta = paired_difference(hits, np.asarray(dense_hits, dtype=np.float64), seed=seed)
        out.update(delta_top1=delta.value, delta_top1_ci=delta.ci)
    return out


def format_field(row: dict | None, key: str, digits: int = 3) -> str:
    """``row[key]`` with its ``row[key + "_ci"]`` as ``0.291 [0.265, 0.318]`` (signed for
    ``delta_*``); ``-`` when the row or the value is missing. For the CLI tables."""
    if row is None or row.get(key) is None:
        return "-"
    lo, hi = row.get(f"{key}_ci") or (None, None)
    value = f"{row[key]:+.{digits}f}" if key.startswith("delta") else f"{row[key]:.{digits}f}"
    return value if lo is None or hi is None else f"{value} [{lo:.{digits}f}, {hi:.{digits}f}]"
