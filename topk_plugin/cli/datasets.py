"""``--data`` and ``--humans`` of the evaluating commands: which folder holds which dataset, and the humans.

``--data`` takes ``[NAME=]DIR`` entries. A bare ``DIR`` is the dataset it is
named after (``.../edge``), else the parent of the requested datasets' folders
it holds (a model-vs-human ``datasets/`` folder, ``../shared/data``), else the
command's main dataset (the one requested; cue-conflict for the search). Datasets not given here are located as
:func:`topk_plugin.shape_bias.locate.find_dataset` says (environment, cache,
package, download).
"""
from __future__ import annotations

from pathlib import Path

from ..shape_bias.dataset import CueConflictDataset
from ..shape_bias.datasets import NAMES, dataset_spec
from ..shape_bias.humans import load_humans
from ..shape_bias.locate import find_dataset
from ..shape_bias.shape_only import ShapeOnlyDataset

__all__ = ["data_folders", "load_stimuli", "humans_by_dataset"]


def data_folders(entries: list[str] | None, datasets: list[str], primary: str | None = None) -> dict[str, Path]:
    """``{dataset: folder}`` for the ``--data`` entries (only the datasets they name or hold); a bare folder
    that is neither goes to ``primary`` (default: the one dataset requested)."""
    primary = primary or (datasets[0] if len(datasets) == 1 else None)
    folders: dict[str, Path] = {}

    def put(name: str, folder: Path, entry: str) -> None:
        dataset_spec(name)
        if name in folders:
            raise ValueError(f"--data gives two folders for {name}: {folders[name]} and {entry}")
        folders[name] = folder

    for entry in entries or []:
        name, eq, rest = entry.partition("=")
        if eq and name in NAMES:
            put(name, Path(rest), entry)
            continue
        if eq and "/" not in name and not Path(entry).exists():
            raise ValueError(f"--data {entry}: {name!r} is not a dataset; use NAME=DIR with NAME one of {', '.join(NAMES)}")
        folder = Path(entry)
        if folder.name in NAMES:
            put(folder.name, folder, entry)
            continue
        held = [n for n in datasets if (folder / n).is_dir()]
        if held:
            for n in held:
                put(n, folder / n, entry)
        elif primary is not None:
            put(primary, folder, entry)
        else:
            raise ValueError(f"--data {entry}: which dataset is it? Name it, e.g. --data {datasets[-1]}={entry} "
                             f"(or pass a folder holding {', '.join(n + '/' for n in datasets)})")
    return folders


def load_stimuli(name: str, folder: Path | None = None, *, resolve: bool = False):
    """The checked stimulus set ``name`` (``CueConflictDataset`` or ``ShapeOnlyDataset``), located if no folder is given."""
    root = find_dataset(name, folder)
    root = root.resolve() if resolve else root
    return ShapeOnlyDataset(root, name) if dataset_spec(name).shape_only else CueConflictDataset(root)


def humans_by_dataset(names: list[str], sources: list[str] | None) -> tuple[dict, list[str]]:
    """``({dataset: HumanTrials or None}, [datasets whose humans came from sources])`` for the shape-only
    ``names``: from ``--humans`` files and folders when given (a dataset they do not cover falls back to the
    package's copies), else the package's copies."""
    out, given = {}, []
    for name in names:
        found = load_humans(name, sources) if sources else None
        if found is not None:
            given.append(name)
        out[name] = found if found is not None else load_humans(name)
    return out, given
