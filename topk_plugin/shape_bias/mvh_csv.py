"""Reading and writing model-vs-human's raw-data CSV files (SPEC section 3)."""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from .._io import atomic_write_text
from .metrics import Trial, labels_from_filename

__all__ = ["COLUMNS", "csv_name", "read_trials", "write_trials"]

COLUMNS = ["subj", "session", "trial", "rt", "object_response", "category", "condition", "imagename"]


def csv_name(model_name: str) -> str:
    """model-vs-human's file name: ``cue-conflict_<name, _ as ->_session-1.csv``."""
    return f"cue-conflict_{model_name.replace('_', '-')}_session-1.csv"


def read_trials(path: str | os.PathLike) -> list[Trial]:
    """Trials of one CSV (model-vs-human or texture-vs-shape layout).

    The shape label is the ``category`` column; the texture label comes from
    the image name's part after the last ``-``. ``na`` answers count as neither.
    A file that is binary, cut short or not such a CSV raises ``ValueError``
    naming it (and the line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such CSV file: {path}")
    try:
        return _read_trials(path)
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a text CSV file (it holds bytes that are not UTF-8 text)") from None
    except csv.Error as err:
        raise ValueError(f"{path} is not a readable CSV file: {err}") from None


def _read_trials(path: Path) -> list[Trial]:
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
                shape, texture = labels_from_filename(row["imagename"])
            except ValueError as err:
                raise ValueError(f"{path}, line {reader.line_num}: {err}") from None
            if shape != row["category"]:
                raise ValueError(
                    f"{path}, line {reader.line_num}: category {row['category']!r} "
                    f"disagrees with image name {row['imagename']!r}"
                )
            answer = row["object_response"].strip()
            trials.append(Trial(row["imagename"], shape, texture, None if answer in ("", "na") else answer, row["subj"]))
    if not trials:
        raise ValueError(f"{path} has no rows")
    return trials


def write_trials(trials: list[Trial], model_name: str, directory: str | os.PathLike) -> Path:
    """Write ``trials`` as model-vs-human's CSV for ``model_name``, atomically."""
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(COLUMNS)
    for i, t in enumerate(trials, start=1):
        writer.writerow([model_name, "session-1", i, "NaN", t.decision or "na", t.shape, "NaN", t.image])
    return atomic_write_text(Path(directory) / csv_name(model_name), rows.getvalue(), newline="")
