"""Shape bias on the cue-conflict stimuli (Geirhos et al. 2019), as in model-vs-human.

Definitions: SPEC section 3. The pieces, one job each:
``categories`` (1000 -> 16 classes), ``metrics`` (shape bias from decisions),
``mvh_csv`` (model-vs-human CSV files), ``dataset`` (the stimuli folder),
``locate`` (where the stimuli are, download), ``batches`` (streaming
normalised batches into a model), ``evaluate`` (a model on the stimuli),
``imagenet`` (top-1 on wnid-labelled images: the recognition cost), ``plot``
(the figures).
"""
from .categories import CATEGORIES, probabilities_to_16class
from .dataset import CueConflictDataset, CueConflictError
from .evaluate import evaluate_model
from .imagenet import ImageNetImages, evaluate_imagenet
from .locate import find_cue_conflict
from .metrics import ShapeBiasResult, Trial, shape_bias
from .mvh_csv import read_trials, write_trials

__all__ = [
    "CATEGORIES",
    "probabilities_to_16class",
    "CueConflictDataset",
    "CueConflictError",
    "evaluate_model",
    "ImageNetImages",
    "evaluate_imagenet",
    "find_cue_conflict",
    "ShapeBiasResult",
    "Trial",
    "shape_bias",
    "read_trials",
    "write_trials",
]
