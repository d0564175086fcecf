"""Shape bias of a classifier trained on a subset of ImageNet classes (class folders named by wnid).

model-vs-human maps 1000 ImageNet probabilities to its 16 categories by the
mean probability over each category's classes. A model trained on N classes
covers only the categories that hold at least one of its wnids. Here:

* the model's softmax over its N classes gives each covered category the
  mean probability of its training classes; the decision is the covered
  category with the largest one (uncovered categories are never chosen);
* :class:`SixteenClassHead` writes these as 1000 logits (each covered
  category's ImageNet indices get ``log`` of that mean, every other index
  ``-inf``), so model-vs-human's own mapping in
  :func:`topk_plugin.shape_bias.evaluate_model` returns exactly this decision;
* only cue-conflict stimuli whose shape *and* texture categories are both
  covered are scored: on the others one of the two answers is impossible,
  which would bias the number.

At least two covered categories are needed (:data:`MIN_CATEGORIES`), else no
shape bias is defined. Imagenette's ten classes cover two (dog: English
springer; truck: garbage truck), so its shape bias rests on the dog/truck
conflict stimuli only; the result records the categories and trial count.
"""
from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from ..shape_bias import evaluate_model, shape_bias
from ..shape_bias.categories import CATEGORIES, category_indices, category_wnids

__all__ = ["MIN_CATEGORIES", "covered_categories", "SixteenClassHead", "cue_conflict_shape_bias", "is_wnid"]

MIN_CATEGORIES = 2
_WNID = re.compile(r"^n\d{8}$")


def is_wnid(name: str) -> bool:
    return bool(_WNID.match(name))


def covered_categories(classes: list[str]) -> dict[str, list[int]]:
    """``{category: [index into classes, ...]}`` for the categories the class wnids cover."""
    wnid_to_category = {w: c for c, wnids in category_wnids().items() for w in wnids}
    covered: dict[str, list[int]] = {}
    for i, name in enumerate(classes):
        category = wnid_to_category.get(name)
        if category is not None:
            covered.setdefault(category, []).append(i)
    return {c: covered[c] for c in CATEGORIES if c in covered}


class SixteenClassHead(nn.Module):
    """``model`` (N logits) as 1000 ImageNet logits that decide as described in the module docstring.

    Inputs of another side than ``img_size`` are resized first (the stimuli are 224 px).
    """

    def __init__(self, model: nn.Module, classes: list[str], img_size: int):
        super().__init__()
        self.model, self.img_size = model, int(img_size)
        self.covered = covered_categories(classes)
        if len(self.covered) < MIN_CATEGORIES:
            raise ValueError(f"the classes cover {len(self.covered)} cue-conflict categories, need {MIN_CATEGORIES}")
        indices = category_indices()
        members = torch.zeros(len(self.covered), len(classes), dtype=torch.float64)
        imagenet = torch.full((1000,), -1, dtype=torch.long)
        for j, (category, mine) in enumerate(self.covered.items()):
            members[j, mine] = 1.0
            imagenet[indices[category]] = j
        self.register_buffer("members", members, persistent=False)
        self.register_buffer("imagenet", imagenet, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.img_size or x.shape[-2] != self.img_size:
            x = F.interpolate(x, size=(self.img_size, self.img_size), mode="bilinear", antialias=True, align_corners=False)
        logp = torch.log_softmax(self.model(x).double(), dim=1)
        # log of the mean probability of each covered category's training classes
        masked = logp.unsqueeze(1) + torch.log(self.members).unsqueeze(0)
        per_category = torch.logsumexp(masked, dim=2) - torch.log(self.members.sum(1))
        out = torch.full((x.shape[0], 1000), float("-inf"), dtype=torch.float64, device=x.device)
        hit = self.imagenet >= 0
        out[:, hit] = per_category[:, self.imagenet[hit]]
        return out


def cue_conflict_shape_bias(model: nn.Module, classes: list[str], img_size: int, root, *, mean, std,
                            name: str = "model", batch_size: int = 32, workers: int = 2, progress: bool = True) -> dict:
    """Shape bias on the stimuli at ``root`` whose shape and texture are both covered categories."""
    head = SixteenClassHead(model, classes, img_size)
    evaluation = evaluate_model(head, str(root), name=name, batch_size=batch_size, workers=workers,
                                mean=mean, std=std, progress=progress, channels_last=False)
    scored = [t for t in evaluation.trials if t.shape in head.covered and t.texture in head.covered]
    result = shape_bias(scored, name).to_dict()
    result.update(categories=list(head.covered), n_stimuli_total=len(evaluation.trials), seconds=evaluation.seconds)
    return {"result": result, "trials": scored}
