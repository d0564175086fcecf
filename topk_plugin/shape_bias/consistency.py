"""Error consistency: do two observers get the same images wrong? (Geirhos, Meding & Wichmann, NeurIPS 2020)

model-vs-human's ``ErrorConsistency``, for two observers with trial-level
correctness ``a`` and ``b`` on the same n images:

* ``c_obs``: the fraction of images both got right or both got wrong;
* ``c_exp = p_a p_b + (1 - p_a)(1 - p_b)`` from their accuracies, the agreement
  of two independent observers with those accuracies;
* ``kappa = (c_obs - c_exp) / (1 - c_exp)`` (Cohen's kappa), and 1 when
  ``c_obs`` is 1.

A model's value is the mean of its kappa with each human subject; the humans'
own reference is each subject's mean kappa with the others, averaged (the mean
over all pairs). The functions take correctness as arrays whose last axis is
the images, so the bootstrap (:mod:`topk_plugin.stats`) evaluates them for all
resamples at once.
"""
from __future__ import annotations

import numpy as np

__all__ = ["kappa", "mean_consistency"]


def kappa(a, b) -> np.ndarray:
    """Cohen's kappa of correctness ``a`` and ``b`` (0/1 arrays, images on the last axis; broadcast)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    pa, pb = a.mean(-1), b.mean(-1)
    both_right = (a * b).mean(-1)
    return _kappa(pa, pb, both_right)


def _kappa(pa, pb, both_right) -> np.ndarray:
    observed = 1 - pa - pb + 2 * both_right  # both right, or both wrong
    expected = pa * pb + (1 - pa) * (1 - pb)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = (observed - expected) / (1 - expected)
    # c_exp = 1 only when both are always right or always wrong: then c_obs = 1 too
    return np.where(np.isclose(observed, 1.0, rtol=0, atol=1e-12), 1.0, value)


def mean_consistency(observers: np.ndarray, subjects: np.ndarray, same: np.ndarray | None = None) -> np.ndarray:
    """Mean over ``observers`` of each one's mean kappa with the ``subjects``.

    ``observers``: (O, ..., n) correctness; ``subjects``: (S, ..., n); the
    middle axes (e.g. bootstrap resamples) are kept. ``same``: an (O, S) bool
    mask of pairs to leave out (an observer who is also a subject is not
    compared with itself). Pairwise agreement comes from one product per pair
    (``einsum``), so nothing of size O x S x n is built.
    """
    observers = np.asarray(observers, dtype=np.float64)
    subjects = np.asarray(subjects, dtype=np.float64)
    n = observers.shape[-1]
    po, ps = observers.mean(-1), subjects.mean(-1)  # (O, ...), (S, ...)
    both = np.einsum("o...n,s...n->os...", observers, subjects) / n
    values = _kappa(po[:, None], ps[None, :], both)  # (O, S, ...)
    if same is not None:
        keep = ~np.asarray(same, dtype=bool)
        keep = keep.reshape(keep.shape + (1,) * (values.ndim - 2))
        values = np.where(keep, values, 0.0).sum(1) / keep.sum(1)
    else:
        values = values.mean(1)
    return values.mean(0)
