"""Held-out images for the placement search: choose on one half, report on the other.

Why: the search keeps the best of ~60 settings, so the scores it chose by are
optimistic (a winner's curse). Scores measured again on images the search
never saw are not.

The split is seeded and deterministic:

* cue-conflict stimuli go by their *shape source image*: the ``N`` of
  ``<shape>N-<texture>M.png``. All stimuli made from one source image land on
  the same side, so no object photo is seen by both halves. Within each shape
  category, the source images are shuffled and the first half goes to the search.
* ImageNet images are split within each class (shuffled, first half to the
  search). A class's odd image goes to the side that has fewer images so far,
  with the classes visited in a shuffled order, so one image per class also
  splits evenly.
"""
from __future__ import annotations

import copy
import random
import re
from collections import defaultdict

__all__ = ["holdout_split", "split_cue_conflict", "split_imagenet", "source_image", "subset"]

_SOURCE = re.compile(r"^(?P<shape>[a-z]+)(?P<n>\d+)-")


def source_image(file_name: str) -> str:
    """``airplane3-bicycle2.png`` -> ``airplane3``: the photo the stimulus's shape comes from."""
    match = _SOURCE.match(file_name.rsplit("/", 1)[-1])
    if match is None:
        raise ValueError(f"{file_name!r} is not a cue-conflict file name <shape>N-<texture>M.png")
    return f"{match['shape']}{match['n']}"


def subset(dataset, keep: list[int]):
    """A shallow copy of ``dataset`` holding only the items at ``keep`` (in that order)."""
    part = copy.copy(dataset)
    part.items = [dataset.items[i] for i in keep]
    return part


def split_cue_conflict(dataset, seed: int = 0) -> tuple[list[int], list[int]]:
    """(search indices, report indices) of a ``CueConflictDataset``, split by shape source image."""
    rng = random.Random(seed)
    sources: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, (path, shape, _texture) in enumerate(dataset.items):
        sources[shape][source_image(path.name)].append(i)
    search, report = [], []
    for shape in sorted(sources):
        names = sorted(sources[shape])
        rng.shuffle(names)
        half = (len(names) + 1) // 2
        for j, name in enumerate(names):
            (search if j < half else report).extend(sources[shape][name])
    return sorted(search), sorted(report)


def split_imagenet(dataset, seed: int = 0) -> tuple[list[int], list[int]]:
    """(search indices, report indices) of an ``ImageNetImages``, half of each class on each side."""
    rng = random.Random(seed)
    by_class: dict[int, list[int]] = defaultdict(list)
    for i, (_path, label) in enumerate(dataset.items):
        by_class[label].append(i)
    classes = sorted(by_class)
    rng.shuffle(classes)
    search, report = [], []
    for label in classes:
        items = by_class[label]
        rng.shuffle(items)
        half = len(items) // 2
        if len(items) % 2:
            half += len(search) <= len(report)  # the odd image evens out the two sides
        search += items[:half]
        report += items[half:]
    return sorted(search), sorted(report)


def holdout_split(cue, imagenet, seed: int = 0):
    """``((search cue, search imagenet), (report cue, report imagenet))`` as dataset subsets."""
    cue_search, cue_report = split_cue_conflict(cue, seed)
    in_search, in_report = split_imagenet(imagenet, seed)
    return (subset(cue, cue_search), subset(imagenet, in_search)), (subset(cue, cue_report), subset(imagenet, in_report))
