"""The 16 cue-conflict categories and the 1000 -> 16 class mapping of model-vs-human."""
from __future__ import annotations

import json
from functools import cache
from importlib import resources

import torch

__all__ = ["CATEGORIES", "category_indices", "category_wnids", "probabilities_to_16class", "decisions"]


@cache
def _table() -> dict:
    return json.loads(resources.files(__package__).joinpath("data/imagenet_16class.json").read_text())


CATEGORIES: tuple[str, ...] = tuple(_table()["categories"])


def category_indices() -> dict[str, list[int]]:
    """``{category: [ImageNet class index, ...]}`` (207 indices in all)."""
    return {c: list(v) for c, v in _table()["indices"].items()}


def category_wnids() -> dict[str, list[str]]:
    """``{category: [ImageNet wnid, ...]}``, the same classes as :func:`category_indices`."""
    return {c: list(v) for c, v in _table()["wnids"].items()}


@cache
def _index_matrix() -> torch.Tensor:
    """(1000, 16) matrix averaging each category's probabilities."""
    matrix = torch.zeros(1000, len(CATEGORIES), dtype=torch.float64)
    for j, category in enumerate(CATEGORIES):
        idx = _table()["indices"][category]
        matrix[idx, j] = 1.0 / len(idx)
    return matrix


def probabilities_to_16class(probabilities: torch.Tensor) -> torch.Tensor:
    """(n, 1000) softmax probabilities -> (n, 16) mean probability per category."""
    if probabilities.ndim != 2 or probabilities.shape[1] != 1000:
        raise ValueError(
            f"expected (n, 1000) ImageNet probabilities, got shape {tuple(probabilities.shape)}; "
            "the 16-class mapping needs a 1000-class ImageNet head"
        )
    return probabilities.double() @ _index_matrix().to(probabilities.device)


def decisions(logits: torch.Tensor) -> list[str]:
    """The 16-class decision for each row of 1000-class logits (softmax, then mean)."""
    scores = probabilities_to_16class(torch.softmax(logits.double(), dim=1))
    return [CATEGORIES[i] for i in scores.argmax(dim=1).tolist()]
