"""Shape bias and shape-only recognition, as in model-vs-human's shape-vs-texture suite (Geirhos et al.).

Definitions: SPEC section 3. The pieces, one job each:
``categories`` (1000 -> 16 classes), ``datasets`` (the five datasets by name),
``stimuli`` (what every stimulus set shares), ``dataset`` (the cue-conflict
folder), ``shape_only`` (edge, silhouette, sketch, stylized folders),
``embedded`` (edge and silhouette shipped in ``data/``), ``locate`` (where a
dataset is, download), ``imagenames`` (model-vs-human's image names),
``metrics`` (shape bias from decisions), ``mvh_csv`` (model-vs-human CSV
files), ``humans`` (the human observers' trials), ``consistency`` (error
consistency), ``shape_only_scores`` and ``intervals`` (numbers with bootstrap
intervals), ``batches`` (streaming normalised batches into a model),
``evaluate`` (a model on a stimulus set), ``imagenet`` (top-1 on
wnid-labelled images: the recognition cost), ``plot`` and ``plot_suite`` (the
figures).
"""
from .categories import CATEGORIES, probabilities_to_16class
from .dataset import CueConflictDataset, CueConflictError
from .datasets import DATASETS, SHAPE_ONLY
from .evaluate import evaluate_model
from .humans import HumanTrials, load_humans
from .imagenet import ImageNetImages, evaluate_imagenet
from .locate import find_cue_conflict, find_dataset
from .metrics import ShapeBiasResult, Trial, shape_bias
from .mvh_csv import read_trials, write_trials
from .shape_only import ShapeOnlyDataset
from .stimuli import StimulusError

__all__ = [
    "CATEGORIES",
    "probabilities_to_16class",
    "DATASETS",
    "SHAPE_ONLY",
    "CueConflictDataset",
    "CueConflictError",
    "ShapeOnlyDataset",
    "StimulusError",
    "evaluate_model",
    "HumanTrials",
    "load_humans",
    "ImageNetImages",
    "evaluate_imagenet",
    "find_cue_conflict",
    "find_dataset",
    "ShapeBiasResult",
    "Trial",
    "shape_bias",
    "read_trials",
    "write_trials",
]
