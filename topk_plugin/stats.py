"""Bootstrap intervals over images: how sure a reported number is.

Why a bootstrap: the numbers we report (mean scores, shape bias, top-1) are
statistics of a few dozen to a few thousand images, and a reader comparing two
of them needs to know whether the difference is larger than the sampling
error. Resampling the images (with replacement) and recomputing the statistic
gives that error without assuming a distribution.

The method, fixed so that results are reproducible and comparable:

* percentile bootstrap, ``n_resamples`` = 2000 resamples of the images,
  95% level: the interval is the 2.5th and 97.5th percentile of the resampled
  statistic (numpy's ``linear`` interpolation);
* the resampled indices come from ``numpy.random.default_rng(seed)``
  (seed 0 by default), as one ``(n_resamples, n)`` matrix: the statistic is
  computed for many resamples at once (vectorised, a few ms for 1000 images),
  in chunks of rows so that memory stays bounded at ImageNet's 50,000 images;
* several arrays given together are *paired*: row ``i`` of every array belongs
  to image ``i`` and they are resampled with the same indices. So the interval
  of a difference between two settings measured on the same images
  (:func:`paired_difference`) reflects only how the settings disagree, and a
  setting compared with itself gets exactly ``[0, 0]``.

Resamples on which the statistic is undefined (NaN, e.g. a shape bias of a
resample with no shape or texture decision) are left out of the quantiles.

A statistic is any function of the arrays that reduces the *last* axis:
``statistic(*arrays)`` for arrays of shape ``(..., n)``. The default is the
mean; a ratio such as shape bias (shape decisions / shape-or-texture
decisions) is ``lambda s, t: s.sum(-1) / (s.sum(-1) + t.sum(-1))``.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["Interval", "bootstrap", "paired_difference", "mean", "N_RESAMPLES", "LEVEL"]

N_RESAMPLES = 2000
LEVEL = 0.95


def mean(x: np.ndarray) -> np.ndarray:
    """The default statistic: the mean over the last (image) axis."""
    return x.mean(axis=-1)


@dataclass(frozen=True)
class Interval:
    """An estimate with its bootstrap interval ``[lo, hi]``."""

    value: float
    lo: float
    hi: float
    n: int
    level: float = LEVEL

    @property
    def ci(self) -> list[float]:
        return [self.lo, self.hi]

    def excludes_zero(self) -> int:
        """+1 when the interval lies above 0, -1 when below, 0 when it contains 0."""
        return 1 if self.lo > 0 else -1 if self.hi < 0 else 0

    def format(self, digits: int = 3) -> str:
        return f"{self.value:.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}]"


def _as_arrays(arrays) -> list[np.ndarray]:
    if not arrays:
        raise ValueError("bootstrap needs at least one array of per-image values")
    out = [np.asarray(a, dtype=np.float64) for a in arrays]
    for a in out:
        if a.ndim != 1:
            raise ValueError(f"per-image values must be 1-D (one value per image), got shape {a.shape}")
    n = len(out[0])
    if any(len(a) != n for a in out):
        raise ValueError(f"paired arrays must have one value per image each, got lengths {[len(a) for a in out]}")
    if n == 0:
        raise ValueError("no images: cannot compute an interval from 0 values")
    if any(not np.all(np.isfinite(a)) for a in out):
        raise ValueError("per-image values contain NaN or inf; drop or fix those images first")
    return out


def _check(n_resamples: int, level: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), e.g. 0.95; got {level}")


# Index matrices up to this many entries (32 MB; 2000 resamples of 2000 images) are kept and
# reused across intervals over the same images; larger ones (ImageNet's 50,000 images) are
# drawn again, chunk by chunk. (int32 indices would halve this but made the gathers 1.8x slower:
# numpy converts them to intp on every gather.)
_CACHE_MAX_ENTRIES = 4 << 20
# Resamples are gathered and reduced this many entries at a time, so the memory a bootstrap
# needs does not grow with the number of images (about 32 MB per float64 array at most).
_CHUNK_ENTRIES = 4 << 20


def _chunk_rows(n: int) -> int:
    return max(1, _CHUNK_ENTRIES // n)


@functools.lru_cache(maxsize=4)
def _cached_indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """The whole index matrix, for bootstraps small enough to keep it (see :func:`_index_chunks`)."""
    idx = np.concatenate(list(_draw(n, n_resamples, seed)))
    idx.setflags(write=False)
    return idx


def _draw(n: int, n_resamples: int, seed: int):
    """The resampling indices, row chunks in order, drawn from ``default_rng(seed)`` one
    chunk after another: the same numbers as one ``(n_resamples, n)`` draw, so chunking
    never changes an interval."""
    rng = np.random.default_rng(seed)
    rows = _chunk_rows(n)
    for start in range(0, n_resamples, rows):
        yield rng.integers(0, n, size=(min(rows, n_resamples - start), n))


def _index_chunks(n: int, n_resamples: int, seed: int):
    """Row chunks of the index matrix: sliced from the cached matrix when it is small,
    otherwise drawn anew (drawing is most of a small bootstrap's cost; memory, of a large one's)."""
    if n * n_resamples <= _CACHE_MAX_ENTRIES:
        idx = _cached_indices(n, n_resamples, seed)
        rows = _chunk_rows(n)
        return (idx[start:start + rows] for start in range(0, n_resamples, rows))
    return _draw(n, n_resamples, seed)


def _resample_statistic(arrays, statistic, n_resamples, seed) -> np.ndarray:
    """``statistic`` of every resample, computed chunk by chunk on the arrays as given (float64)."""
    parts = [np.asarray(statistic(*(a[idx] for a in arrays)), dtype=np.float64).reshape(len(idx))
             for idx in _index_chunks(len(arrays[0]), n_resamples, seed)]
    return np.concatenate(parts)


def _interval(value: float, resampled: np.ndarray, n: int, level: float) -> Interval:
    alpha = (1 - level) / 2
    undefined = np.isnan(resampled)
    if undefined.all():
        return Interval(float(value), float("nan"), float("nan"), n, level)
    quantile = np.nanquantile if undefined.any() else np.quantile
    lo, hi = quantile(resampled, [alpha, 1 - alpha])
    return Interval(float(value), float(lo), float(hi), n, level)


def bootstrap(
    *arrays,
    statistic: Callable[..., np.ndarray] = mean,
    n_resamples: int = N_RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> Interval:
    """``statistic(*arrays)`` with its percentile bootstrap interval over images (see module doc)."""
    _check(n_resamples, level)
    arrays = _as_arrays(arrays)
    value = float(statistic(*arrays))
    return _interval(value, _resample_statistic(arrays, statistic, n_resamples, seed), len(arrays[0]), level)


def paired_difference(
    a,
    b,
    *,
    statistic: Callable[..., np.ndarray] = mean,
    n_resamples: int = N_RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> Interval:
    """``statistic(a) - statistic(b)`` for two settings measured on the same images,
    with the interval of the difference (both resampled with the same indices).

    ``a`` and ``b`` are per-image arrays, or tuples of them for a statistic of
    several arrays (e.g. shape bias from shape and texture decisions).
    """
    a_arrays = list(a) if isinstance(a, tuple) else [a]
    b_arrays = list(b) if isinstance(b, tuple) else [b]
    if len(a_arrays) != len(b_arrays):
        raise ValueError(f"both settings need the same number of arrays, got {len(a_arrays)} and {len(b_arrays)}")
    k = len(a_arrays)

    def difference(*arrays):
        return statistic(*arrays[:k]) - statistic(*arrays[k:])

    return bootstrap(*a_arrays, *b_arrays, statistic=difference, n_resamples=n_resamples, level=level, seed=seed)
