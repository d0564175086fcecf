"""The five datasets of model-vs-human's shape-vs-texture suite, by name (SPEC section 3).

Why a table: the command line, the locator, the evaluators and the CSV reader
all need the same facts about each dataset (its size and layout, whether it
ships inside this package, which archive of model-vs-human's release holds it,
which tag its human trials carry), and a new dataset should be one row.

* ``cue-conflict``: 1280 stimuli with the shape of one category and the texture
  of another; scored by shape bias.
* ``edge``, ``silhouette``, ``sketch``, ``stylized``: shape-only stimuli (no
  texture of another category); scored by 16-class accuracy and by error
  consistency with the human observers. ``edge`` and ``silhouette`` ship inside
  the package (``data/``, CC BY 4.0); the others come from model-vs-human's
  release.

Folder layouts, as model-vs-human's loaders read them:
``<category>/<file>.png`` (cue-conflict, edge, silhouette), and
``dnn/session-1/NNNN_<tag>_dnn_<condition>_<category>_NN_<file>.png`` (sketch,
stylized: the category is the 5th ``_`` field).
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DatasetSpec", "DATASETS", "NAMES", "SHAPE_ONLY", "RELEASE_URL", "dataset_spec", "check_names"]

RELEASE_URL = "https://github.com/bethgelab/model-vs-human/releases/download/v0.1/{name}.tar.gz"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    size: int  # images in the set
    kind: str  # "cue-conflict" (shape bias) or "shape-only" (accuracy, error consistency)
    tag: str  # the image-name tag of its human trials (NNNN_<tag>_sNN_...), "" for cue-conflict
    sessions: bool = False  # model-vs-human's dnn/session-N/ layout
    embedded: bool = False  # ships inside topk_plugin/shape_bias/data/
    sha256: str | None = None  # of the release archive, when pinned

    @property
    def per_category(self) -> int:
        return self.size // 16

    @property
    def env_var(self) -> str:
        """The environment variable naming its folder: ``TOPK_PLUGIN_CUE_CONFLICT``, ``TOPK_PLUGIN_EDGE``, ..."""
        return "TOPK_PLUGIN_" + self.name.upper().replace("-", "_")

    @property
    def url(self) -> str | None:
        """model-vs-human's release archive (None for the embedded sets)."""
        return None if self.embedded else RELEASE_URL.format(name=self.name)

    @property
    def shape_only(self) -> bool:
        return self.kind == "shape-only"


# The release archives' sha256 are not pinned: this project was built without access to the
# release; a download is checked by its content instead (every category, count and file name).
DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("cue-conflict", 1280, "cue-conflict", ""),
        DatasetSpec("edge", 160, "shape-only", "edg", embedded=True),
        DatasetSpec("silhouette", 160, "shape-only", "sif", embedded=True),
        DatasetSpec("sketch", 800, "shape-only", "ske", sessions=True),
        DatasetSpec("stylized", 800, "shape-only", "sty", sessions=True),
    )
}
NAMES: tuple[str, ...] = tuple(DATASETS)
SHAPE_ONLY: tuple[str, ...] = tuple(n for n, s in DATASETS.items() if s.shape_only)


def dataset_spec(name: str) -> DatasetSpec:
    """The dataset called ``name``; an unknown name raises ``ValueError`` listing the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}: choose from {', '.join(NAMES)}") from None


def check_names(names) -> list[str]:
    """``names`` as a list, each known and given once (in the order given)."""
    names = list(names)
    for name in names:
        dataset_spec(name)
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"dataset {', '.join(twice)} named more than once")
    return names
