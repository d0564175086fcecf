"""Reading and writing model-vs-human's raw-data CSV files, for every dataset of the suite (SPEC section 3).

A CSV's dataset is told by its file name (model-vs-human's ``<dataset>_<observer>_session...csv``,
texture-vs-shape's ``edge-experiment_...`` / ``silhouette-filled-experiment_...`` /
``style-transfer-512-nomask-experiment_...``), else by its image names (the
experiment tag of human trials, or cue-conflict's ``<shape>N-<texture>M.png``).
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from .._io import atomic_write_text
from .categories import CATEGORIES
from .datasets import DATASETS, dataset_spec
from .imagenames import category_of, experiment_tag
from .metrics import Trial, labels_from_filename

__all__ = ["COLUMNS", "csv_name", "read_trials", "write_trials", "csv_dataset", "csv_observer"]

COLUMNS = ["subj", "session", "trial", "rt", "object_response", "category", "condition", "imagename"]

# file-name prefixes of each dataset's CSVs (model-vs-human's, then texture-vs-shape's)
_PREFIXES = {
    "cue-conflict": ("cue-conflict_", "style-transfer-512-nomask-experiment_"),
    "edge": ("edge_", "edge-experiment_"),
    "silhouette": ("silhouette_", "silhouette-filled-experiment_"),
    "sketch": ("sketch_",),
    "stylized": ("stylized_",),
}
_TAGS = {spec.tag: name for name, spec in DATASETS.items() if spec.tag}


def csv_name(model_name: str, dataset: str = "cue-conflict") -> str:
    """model-vs-human's file name: ``<dataset>_<name, _ as ->_session-1.csv``."""
    dataset_spec(dataset)
    return f"{dataset}_{model_name.replace('_', '-')}_session-1.csv"


def _dataset_of_name(path: Path) -> str | None:
    name = path.name
    matches = [(len(p), d) for d, prefixes in _PREFIXES.items() for p in prefixes if name.startswith(p)]
    return max(matches)[1] if matches else None


def _dataset_of_image(imagename: str) -> str | None:
    tag = experiment_tag(imagename)
    if tag in _TAGS:
        return _TAGS[tag]
    try:
        labels_from_filename(imagename)
        return "cue-conflict"
    except ValueError:
        return None


def csv_observer(path: str | os.PathLike) -> str:
    """The observer part of a CSV's file name: ``edge-experiment_alexnet_session_1.csv`` -> ``alexnet``."""
    stem = Path(path).stem.removesuffix("_session-1").removesuffix("_session_1")
    prefixes = [p for ps in _PREFIXES.values() for p in ps if stem.startswith(p)]
    return stem[len(max(prefixes, key=len)):] if prefixes else stem


def csv_dataset(path: str | os.PathLike) -> str | None:
    """The dataset of a CSV, from its file name or else its first image name; None when neither tells."""
    path = Path(path)
    found = _dataset_of_name(path)
    if found is not None or not path.is_file():
        return found
    try:
        with path.open(newline="", encoding="utf-8") as f:
            row = next(csv.DictReader(f), None)
    except (UnicodeDecodeError, csv.Error):
        return None
    return _dataset_of_image(row.get("imagename") or "") if row else None


def read_trials(path: str | os.PathLike, dataset: str | None = None) -> list[Trial]:
    """Trials of one CSV (model-vs-human or texture-vs-shape layout) of ``dataset`` (default: :func:`csv_dataset`).

    The shape label is the ``category`` column. On cue-conflict the texture
    label comes from the image name's part after the last ``-``; a shape-only
    trial's texture is its category, and a human trial's image name must name
    the same category in its 5th ``_`` field. ``na`` answers count as neither.
    A file that is binary, cut short or not such a CSV raises ``ValueError``
    naming it (and the line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such CSV file: {path}")
    if dataset is None:
        dataset = csv_dataset(path) or "cue-conflict"
    spec = dataset_spec(dataset)
    try:
        return _read_trials(path, spec.shape_only)
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a text CSV file (it holds bytes that are not UTF-8 text)") from None
    except csv.Error as err:
        raise ValueError(f"{path} is not a readable CSV file: {err}") from None


def _labels(row: dict, shape_only: bool) -> tuple[str, str]:
    """(shape, texture) of a row, checked against its image name."""
    name, category = row["imagename"], row["category"]
    if not shape_only:
        shape, texture = labels_from_filename(name)
        if shape != category:
            raise ValueError(f"category {category!r} disagrees with image name {name!r}")
        return shape, texture
    if category not in CATEGORIES:
        raise ValueError(f"category {category!r} is not one of the 16 categories")
    if experiment_tag(name) is not None and category_of(name) != category:
        raise ValueError(f"category {category!r} disagrees with image name {name!r} (5th '_' field)")
    return category, category


def _read_trials(path: Path, shape_only: bool) -> list[Trial]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"subj", "object_response", "category", "imagename"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path} is not a model-vs-human CSV: missing columns {sorted(missing)}")
        trials = []
        for row in reader:
            if None in row.values() or None in row:  # fewer or more cells than the header
                raise ValueError(f"{path}, line {reader.line_num}: {len(reader.fieldnames)} columns expected, the row "
                                 "has another number (is the file cut short?)")
            try:
                shape, texture = _labels(row, shape_only)
            except ValueError as err:
                raise ValueError(f"{path}, line {reader.line_num}: {err}") from None
            answer = row["object_response"].strip()
            trials.append(Trial(row["imagename"], shape, texture, None if answer in ("", "na") else answer, row["subj"]))
    if not trials:
        raise ValueError(f"{path} has no rows")
    return trials


def write_trials(trials: list[Trial], model_name: str, directory: str | os.PathLike,
                 dataset: str = "cue-conflict") -> Path:
    """Write ``trials`` as model-vs-human's CSV of ``model_name`` on ``dataset``, atomically.

    As its evaluator writes them: the image name as in the dataset folder, and
    the condition ``NaN``, or for the ``dnn/session-N`` sets the image name's 4th
    ``_`` field.
    """
    sessions = dataset_spec(dataset).sessions
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(COLUMNS)
    for i, t in enumerate(trials, start=1):
        condition = t.image.split("_")[3] if sessions else "NaN"
        writer.writerow([model_name, "session-1", i, "NaN", t.decision or "na", t.shape, condition, t.image])
    return atomic_write_text(Path(directory) / csv_name(model_name, dataset), rows.getvalue(), newline="")
