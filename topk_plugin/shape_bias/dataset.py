"""The cue-conflict stimuli folder: validation and a Dataset of decoded images."""
from __future__ import annotations

from pathlib import Path

from .categories import CATEGORIES
from .metrics import labels_from_filename
from .stimuli import Stimuli, StimulusError, stack

__all__ = ["CueConflictError", "CueConflictDataset", "scan_cue_conflict", "IMAGES_PER_CATEGORY", "stack"]

IMAGES_PER_CATEGORY = 80


class CueConflictError(StimulusError):
    """The stimuli folder is missing, incomplete, or holds a bad file."""


def scan_cue_conflict(root: str | Path, per_category: int = IMAGES_PER_CATEGORY) -> list[tuple[Path, str, str]]:
    """``[(path, shape, texture)]`` sorted by path, after checking the whole set.

    Every problem is collected and reported at once: missing or extra category
    folders, misnamed files (with their paths), wrong counts.
    """
    root = Path(root)
    if not root.is_dir():
        raise CueConflictError(f"cue-conflict folder not found: {root}")
    problems, items = [], []
    folders = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    for missing in sorted(set(CATEGORIES) - folders):
        problems.append(f"missing folder {root / missing}")
    for extra in sorted(folders - set(CATEGORIES)):
        problems.append(f"unexpected folder {root / extra} (not one of the 16 categories)")
    for category in CATEGORIES:
        folder = root / category
        if not folder.is_dir():
            continue
        files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        good = 0
        for path in files:
            try:
                shape, texture = labels_from_filename(path.name)
            except ValueError:
                problems.append(f"misnamed file {path} (expected <shape>N-<texture>M.png)")
                continue
            if shape != category or texture not in CATEGORIES:
                problems.append(f"misnamed file {path} (shape {shape!r} in folder {category!r}, texture {texture!r})")
                continue
            items.append((path, shape, texture))
            good += 1
        if good != per_category:
            problems.append(f"{folder} holds {good} valid images, expected {per_category}")
    if problems:
        shown = "\n  ".join(problems[:30]) + ("\n  ..." if len(problems) > 30 else "")
        raise CueConflictError(f"the cue-conflict set at {root} is incomplete or invalid:\n  {shown}")
    return sorted(items)


class CueConflictDataset(Stimuli):
    """The 1280 cue-conflict stimuli (see :class:`Stimuli`); items are ``(path, shape, texture)``."""

    name = "cue-conflict"
    error = CueConflictError

    def __init__(self, root: str | Path, per_category: int = IMAGES_PER_CATEGORY):
        self.root = Path(root)
        self.items = scan_cue_conflict(self.root, per_category)
        self._measure()
