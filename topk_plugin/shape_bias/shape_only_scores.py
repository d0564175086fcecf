"""A shape-only dataset's numbers with their intervals: 16-class accuracy and error consistency.

Why beside shape bias: a shape bias rises whenever texture evidence is
suppressed, whether or not the network recognises shapes any better. Accuracy
on shape-only stimuli (edge maps, silhouettes, sketches) says whether it does,
and error consistency whether it fails on the images humans fail on.

All intervals are 95% percentile bootstraps over images (``topk_plugin.stats``,
2000 resamples, ``seed``); a setting compared with dense on the same images
gets the paired difference (``delta_*``), and every human subject is
resampled with the same images as the model.

Keys: ``accuracy``, ``accuracy_ci``, ``delta_accuracy(_ci)``;
``error_consistency`` (mean kappa with the human subjects), ``_ci``,
``delta_error_consistency(_ci)``, ``error_consistency_per_subject``,
``n_subjects``; ``n_images``.
"""
from __future__ import annotations

import numpy as np

from ..stats import bootstrap, paired_difference
from .consistency import kappa, mean_consistency
from .humans import HumanTrials, by_observer
from .imagenames import image_id

__all__ = ["setting_scores", "trials_scores", "human_reference", "covers_humans"]


def _accuracy(correct: np.ndarray, dense: np.ndarray | None, seed: int) -> dict:
    out = {"accuracy": float(correct.mean()), "accuracy_ci": bootstrap(correct, seed=seed).ci,
           "n_images": len(correct)}
    if dense is not None:
        delta = paired_difference(correct, dense, seed=seed)
        out.update(delta_accuracy=delta.value, delta_accuracy_ci=delta.ci)
    return out


def _consistency(observers: np.ndarray, humans: HumanTrials, dense: np.ndarray | None = None,
                 same: np.ndarray | None = None, seed: int = 0) -> dict:
    """Mean kappa of ``observers`` (O, n, in ``humans.ids`` order) with the subjects, with its interval."""
    o = len(observers)

    def statistic(*arrays):
        return mean_consistency(np.stack(arrays[:o]), np.stack(arrays[o:]), same)

    subjects = tuple(humans.correct)
    value = bootstrap(*observers, *subjects, statistic=statistic, seed=seed)
    out = {"error_consistency": value.value, "error_consistency_ci": value.ci, "n_subjects": len(subjects)}
    if dense is not None:
        delta = paired_difference((*observers, *subjects), (*dense, *subjects), statistic=statistic, seed=seed)
        out.update(delta_error_consistency=delta.value, delta_error_consistency_ci=delta.ci)
    return out


def setting_scores(decisions, names, categories, *, dense_decisions=None, humans: HumanTrials | None = None,
                   seed: int = 0) -> dict:
    """One model setting on one shape-only dataset.

    ``decisions``, ``names`` (image file names) and ``categories`` are per image,
    in the same order; ``dense_decisions`` the dense model's on the same images.
    """
    decisions, categories = list(decisions), list(categories)
    if not len(decisions) == len(names) == len(categories):
        raise ValueError(f"{len(decisions)} decisions for {len(names)} images and {len(categories)} categories")
    correct = np.array([d == c for d, c in zip(decisions, categories, strict=True)], dtype=np.float64)
    dense = None if dense_decisions is None else np.array(
        [d == c for d, c in zip(dense_decisions, categories, strict=True)], dtype=np.float64)
    out = _accuracy(correct, dense, seed)
    if humans is not None:
        order = humans.positions([image_id(n) for n in names])
        out.update(_consistency(correct[order][None], humans, None if dense is None else dense[order][None], seed=seed))
        out["error_consistency_per_subject"] = dict(zip(humans.subjects, kappa(correct[order], humans.correct).tolist(),
                                                        strict=True))
    return out


def trials_scores(trials, humans: HumanTrials | None = None, *, seed: int = 0) -> dict:
    """Pooled trials of one or more observers (e.g. model-vs-human CSVs) on one shape-only dataset.

    Accuracy is pooled over all trials; its interval resamples images (an
    image's trials together). Error consistency, with ``humans``, is each
    observer's mean kappa with the human subjects (itself left out when it is
    one of them), averaged over the observers: for the subjects themselves,
    the mean over all pairs.
    """
    per_image: dict[str, list[int]] = {}
    for t in trials:
        hits = per_image.setdefault(image_id(t.image), [0, 0])
        hits[0] += t.decision == t.shape
        hits[1] += 1
    counts = np.array([per_image[i] for i in sorted(per_image)], dtype=np.float64)
    interval = bootstrap(counts[:, 0], counts[:, 1], statistic=lambda h, n: h.sum(-1) / n.sum(-1), seed=seed)
    out = {"accuracy": interval.value, "accuracy_ci": interval.ci, "n_images": len(per_image), "n_trials": len(trials)}
    if humans is not None:
        observers = by_observer(trials)
        names = sorted(observers)
        for n in names:
            humans.positions(list(observers[n]), who=f"observer {n!r}")  # the same images, or an error naming them
        correct = np.array([[observers[n][i].decision == observers[n][i].shape for i in humans.ids] for n in names],
                           dtype=np.float64)
        same = np.array([[n == s for s in humans.subjects] for n in names])
        if any(same.sum(1) == len(humans.subjects)):
            raise ValueError("error consistency of a lone human subject with itself is undefined: give the other "
                             "subjects too")
        out.update(_consistency(correct, humans, same=same, seed=seed))
        out["observers"] = len(names)
    return out


def covers_humans(trials, humans: HumanTrials) -> bool:
    """Whether every observer in ``trials`` has one trial of each of the humans' images (error consistency needs it)."""
    want = set(humans.ids)
    try:
        return all(set(seen) == want for seen in by_observer(trials).values())
    except ValueError:  # two trials of one image
        return False


def human_reference(humans: HumanTrials, *, seed: int = 0) -> dict:
    """The humans' row: pooled accuracy (interval over images) and mean between-subject error consistency."""
    fraction = humans.correct.mean(0)  # per image: the share of subjects who got it right
    interval = bootstrap(fraction, seed=seed)
    same = np.eye(len(humans.subjects), dtype=bool)
    out = {"name": "humans", "dataset": humans.dataset, "accuracy": interval.value, "accuracy_ci": interval.ci,
           "n_images": len(humans.ids)}
    if len(humans.subjects) > 1:
        out.update(_consistency(humans.correct, humans, same=same, seed=seed))
    out["n_subjects"] = len(humans.subjects)
    return out
