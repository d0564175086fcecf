"""The data that ships inside the package: the edge and silhouette sets and their human trials.

Why shipped: 2.2 MB of stimuli (CC BY 4.0, ``data/ATTRIBUTION.md``) let
``topk-plugin shape-bias --datasets edge silhouette`` run on a fresh install,
offline, with the humans beside the model.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from .datasets import dataset_spec

__all__ = ["data_dir", "embedded_dataset", "embedded_humans"]


def data_dir() -> Path:
    """``topk_plugin/shape_bias/data`` as a folder (the package is installed as files, editable or from a wheel)."""
    return Path(str(resources.files(__package__).joinpath("data")))


def embedded_dataset(name: str) -> Path | None:
    """The shipped stimuli folder of ``name``, None when the package does not ship it."""
    return data_dir() / name if dataset_spec(name).embedded else None


def embedded_humans(name: str) -> list[Path]:
    """The shipped human trial CSVs of ``name`` (none for the sets that are not shipped)."""
    folder = data_dir() / "humans" / name
    return sorted(folder.glob("*.csv")) if folder.is_dir() else []
