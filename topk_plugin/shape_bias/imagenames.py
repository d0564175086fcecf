"""model-vs-human's image names: the category and the stimulus they show.

Human trials (and the sketch/stylized files) are named
``NNNN_<tag>_<subject>_<condition>_<category>_NN_<file>``: ``NNNN`` is the trial
number (it differs between observers), ``<tag>`` the experiment (``edg``,
``sif``, ``ske``, ``sty``), the category is the 5th ``_`` field and ``<file>``
(after the 6th ``_``) the stimulus file name (``oven10.png``). A model
evaluated on a ``<category>/<file>`` folder writes plain ``<file>``. The
stimulus id, ``<file>`` in both cases, is what pairs the trials of two
observers (model-vs-human's ``get_short_imagename`` for these names).
"""
from __future__ import annotations

__all__ = ["category_of", "image_id", "experiment_tag"]

_FIELDS = 7  # NNNN, tag, subject, condition, category, NN, file


def _fields(name: str) -> list[str] | None:
    base = name.rsplit("/", 1)[-1]
    parts = base.split("_", _FIELDS - 1)
    return parts if len(parts) == _FIELDS else None


def category_of(name: str) -> str:
    """The category of a model-vs-human image name: its 5th ``_`` field.

    ``0001_edg_s01_0_oven_00_oven10.png`` -> ``oven``. A name without the
    seven fields raises ``ValueError``.
    """
    parts = _fields(name)
    if parts is None:
        raise ValueError(f"{name!r} is not a model-vs-human image name NNNN_<tag>_<subject>_<condition>_<category>_NN_<file>")
    return parts[4]


def experiment_tag(name: str) -> str | None:
    """The experiment tag (``edg``, ``sif``, ``ske``, ``sty``) of such a name, None for a plain file name."""
    parts = _fields(name)
    return None if parts is None else parts[1]


def image_id(name: str) -> str:
    """The stimulus an image name shows: the part after the 6th ``_``, or the plain file name."""
    parts = _fields(name)
    return name.rsplit("/", 1)[-1] if parts is None else parts[6]
