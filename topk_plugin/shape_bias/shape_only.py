"""The shape-only stimulus sets (edge, silhouette, sketch, stylized): folder checks and a Dataset.

Each holds the same number of images of each of the 16 categories, labelled as
model-vs-human's loaders label them (see :mod:`.datasets`): by the category
folder (``<category>/<file>``), or for the ``dnn/session-N/`` layout by the
image name's 5th ``_`` field. Only files with an image suffix count, as in
torchvision's ``ImageFolder`` that model-vs-human uses.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from .categories import CATEGORIES
from .datasets import DatasetSpec, dataset_spec
from .imagenames import category_of
from .stimuli import Stimuli, StimulusError

__all__ = ["ShapeOnlyDataset", "scan_shape_only", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")  # ImageFolder's


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)


def _by_folder(root: Path, problems: list[str]) -> list[tuple[Path, str]]:
    folders = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    for missing in sorted(set(CATEGORIES) - folders):
        problems.append(f"missing category folder {root / missing}")
    for extra in sorted(folders - set(CATEGORIES)):
        problems.append(f"unexpected folder {root / extra} (not one of the 16 categories)")
    return [(path, category) for category in CATEGORIES if (root / category).is_dir()
            for path in _images(root / category)]


def _by_name(root: Path, problems: list[str]) -> list[tuple[Path, str]]:
    dnn = root / "dnn"
    if not dnn.is_dir():
        problems.append(f"missing folder {dnn} (model-vs-human's layout: {root.name}/dnn/session-1/<images>)")
        return []
    sessions = sorted(p for p in dnn.iterdir() if not p.name.startswith("."))
    for odd in [p for p in sessions if not (p.is_dir() and p.name.startswith("session-"))]:
        problems.append(f"unexpected entry {odd} (only session-N folders belong in {dnn})")
    found = []
    for session in [p for p in sessions if p.is_dir() and p.name.startswith("session-")]:
        for path in _images(session):
            try:
                category = category_of(path.name)
            except ValueError:
                category = None
            if category not in CATEGORIES:
                problems.append(f"misnamed file {path} (expected NNNN_<tag>_dnn_<condition>_<category>_NN_<file>, "
                                "the category one of the 16)")
                continue
            found.append((path, category))
    return found


def scan_shape_only(root: str | Path, spec: DatasetSpec | str) -> list[tuple[Path, str, str]]:
    """``[(path, category, category)]`` sorted by path, after checking the whole set.

    Every problem is reported at once, with its path: a missing or extra
    category folder, a category with too few or too many images, a misnamed
    file of the session layout.
    """
    spec = dataset_spec(spec) if isinstance(spec, str) else spec
    root = Path(root)
    if not root.is_dir():
        raise StimulusError(f"{spec.name} folder not found: {root}")
    problems: list[str] = []
    found = (_by_name if spec.sessions else _by_folder)(root, problems)
    counts = Counter(category for _, category in found)
    where = root / "dnn" if spec.sessions else root
    for category in CATEGORIES:
        if counts[category] != spec.per_category and (spec.sessions or (root / category).is_dir()):
            place = where if spec.sessions else root / category
            problems.append(f"{place} holds {counts[category]} images of category {category!r}, "
                            f"expected {spec.per_category}")
    if problems:
        shown = "\n  ".join(problems[:30]) + ("\n  ..." if len(problems) > 30 else "")
        raise StimulusError(f"the {spec.name} set at {root} is incomplete or invalid:\n  {shown}")
    return sorted((path, category, category) for path, category in found)


class ShapeOnlyDataset(Stimuli):
    """One shape-only set (see :class:`Stimuli`); items are ``(path, category, category)``."""

    shape_only = True

    def __init__(self, root: str | Path, name: str):
        self.spec = dataset_spec(name)
        if not self.spec.shape_only:
            raise ValueError(f"{name} is not a shape-only dataset (use CueConflictDataset)")
        self.name = name
        self.root = Path(root)
        self.items = scan_shape_only(self.root, self.spec)
        self._measure()

    def categories(self) -> list[str]:
        """The category of every item, in item order."""
        return [category for _path, category, _ in self.items]
