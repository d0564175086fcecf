"""The human observers of a shape-only dataset: their trials, accuracy and error consistency.

Why a table of correctness: the humans are the reference row of every
shape-only result (how accurate are people on edge maps, and how much do two
people agree on which images are hard), and a model's error consistency is
its kappa with each of them on the same images. Each subject saw every image
of the set once (model-vs-human's experiments), so the trials form a subjects
x images table, paired across observers by stimulus id (:mod:`.imagenames`).

Human subjects are the observers named ``subject-*`` (model-vs-human's
pattern); other observers in the same files (models) are left out. The
trials come from the files the user names, else from the copies the package
ships (edge, silhouette).
"""
from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import numpy as np

from .embedded import embedded_humans
from .imagenames import image_id
from .metrics import Trial
from .mvh_csv import csv_dataset, read_trials

__all__ = ["HumanTrials", "human_trials", "load_humans", "human_csv_files", "HUMANS_PATTERN", "by_observer"]

HUMANS_PATTERN = "subject-*"


@dataclass
class HumanTrials:
    """Correctness of each human subject on each image of one dataset."""

    dataset: str
    subjects: list[str]
    ids: list[str]  # stimulus ids, sorted
    categories: list[str]  # per id
    correct: np.ndarray  # (subjects, images) of 0.0 / 1.0
    sources: list[str]

    def positions(self, ids: list[str], who: str = "the model") -> np.ndarray:
        """Where each of this table's images is in ``ids`` (an observer's image order); every image must be there."""
        where = {i: k for k, i in enumerate(ids)}
        missing = [i for i in self.ids if i not in where]
        extra = sorted(set(where) - set(self.ids))
        if missing or extra:
            raise ValueError(
                f"{who} and the {self.dataset} human trials are not on the same images: {len(missing)} of the humans' "
                f"{len(self.ids)} images missing (e.g. {missing[:3]}), {len(extra)} others (e.g. {extra[:3]}); "
                "error consistency needs both on the same stimuli"
            )
        return np.array([where[i] for i in self.ids])


def by_observer(trials: list[Trial]) -> dict[str, dict[str, Trial]]:
    """``{observer: {stimulus id: trial}}``; an observer with two trials of one stimulus raises ``ValueError``."""
    table: dict[str, dict[str, Trial]] = defaultdict(dict)
    for t in trials:
        key = image_id(t.image)
        if key in table[t.subject]:
            raise ValueError(f"observer {t.subject!r} has two trials of stimulus {key!r}; error consistency needs one "
                             "trial per observer and image")
        table[t.subject][key] = t
    return dict(table)


def human_trials(dataset: str, trials: list[Trial], sources=()) -> HumanTrials | None:
    """The ``subject-*`` observers of ``trials`` as a table, checked (None when there are none).

    Every subject must have one trial of each of the same images with the same category.
    """
    observers = {s: v for s, v in by_observer(trials).items() if fnmatch(s, HUMANS_PATTERN)}
    if not observers:
        return None
    subjects = sorted(observers)
    first = observers[subjects[0]]
    ids = sorted(first)
    for s in subjects[1:]:
        if set(observers[s]) != set(ids):
            raise ValueError(f"human subject {s!r} saw other {dataset} images than {subjects[0]!r} "
                             f"({len(observers[s])} vs {len(ids)} stimuli); model-vs-human's subjects each see the "
                             "whole set")
        wrong = [i for i in ids if observers[s][i].shape != first[i].shape]
        if wrong:
            raise ValueError(f"human subject {s!r} labels stimulus {wrong[0]!r} {observers[s][wrong[0]].shape!r}, "
                             f"{subjects[0]!r} labels it {first[wrong[0]].shape!r}")
    correct = np.array([[observers[s][i].decision == observers[s][i].shape for i in ids] for s in subjects],
                       dtype=np.float64)
    return HumanTrials(dataset, subjects, ids, [first[i].shape for i in ids], correct, [str(p) for p in sources])


def human_csv_files(paths, dataset: str) -> list[Path]:
    """The CSV files named, and those in the folders named or in their ``<dataset>/`` subfolder."""
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(p.glob("*.csv")) + sorted((p / dataset).glob("*.csv"))
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"no such human CSV file or folder: {p}")
    return files


def load_humans(dataset: str, sources: list[str | os.PathLike] | None = None) -> HumanTrials | None:
    """The human trials of ``dataset``: from ``sources`` (CSV files, or folders of them, e.g.
    model-vs-human's ``raw-data`` or ``raw-data/<dataset>``) when given, else the package's copies; None if
    there are none.

    From ``sources`` only the CSVs of ``dataset`` count (:func:`.mvh_csv.csv_dataset`).
    """
    files = embedded_humans(dataset) if sources is None else [f for f in human_csv_files(sources, dataset)
                                                               if csv_dataset(f) == dataset]
    trials = [t for f in files for t in read_trials(f, dataset)]
    return human_trials(dataset, trials, files) if trials else None
