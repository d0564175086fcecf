"""The losses of many optimisations at once: one row of a batch per (target, analysis, condition, K).

Why one batch: on a CPU a backbone's forward and backward pass over 14 images
of 128 px costs far less than 14 passes over one (BENCHMARKS.md), and the
conditions of an image (and of several images) are independent optimisations
of the same network. Each row's loss depends on its own image only (the
backbone runs in eval mode, so no statistic crosses the batch), hence the
gradient of the summed loss with respect to row ``i`` is the gradient of row
``i``'s own loss: a per-row optimiser (``optimize.minimize_batch``) then runs
each optimisation exactly as it would run alone, up to the order of float sums
inside the batched convolutions.

The target's features are computed once per image and shared by all its
rows, whatever the condition and K.

Losses (the same as one condition at a time; see ``reconstruct`` and ``texture``):

* reconstruction: mean over layers of ``||F(x) - m * F(t)||^2 / ||F(t)||^2``;
* texture synthesis: mean over layers of
  ``||G(m(F(x))) - G(m(F(t)))||^2 / ||G(F(t))||^2``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .conditions import masked
from .features import FeatureExtractor
from .scores import gram_matrix

__all__ = ["KINDS", "BatchObjective", "Task", "reconstruction_loss", "texture_loss"]

KINDS = ("reconstruct", "texture-synthesis")


@dataclass(frozen=True)
class Task:
    """One optimisation: which target (index into the targets), analysis, condition and K."""

    analysis: str
    condition: str
    k: float | int
    target: int = 0

    def __post_init__(self):
        if self.analysis not in KINDS:
            raise ValueError(f"unknown analysis {self.analysis!r}; choose from {', '.join(KINDS)}")


def reconstruction_loss(features: dict, targets: dict, scales: dict) -> torch.Tensor:
    """Per-row reconstruction loss ``(n,)`` of ``features`` against the (masked) ``targets``."""
    total = 0.0
    for name, f in features.items():
        total = total + (f - targets[name]).pow(2).flatten(1).sum(1) / scales[name]
    return total / len(features)


def texture_loss(features: dict, target_grams: dict, scales: dict, cond: str, k) -> torch.Tensor:
    """Per-row texture loss ``(n,)``: Gram matrices of the masked ``features`` against ``target_grams``."""
    total = 0.0
    for name, f in features.items():
        g = gram_matrix(masked(f, cond, k))
        total = total + (g - target_grams[name]).pow(2).flatten(1).sum(1) / scales[name]
    return total / len(features)


class BatchObjective:
    """``objective(images, rows)`` -> the loss of each image, ``images[j]`` optimised for task ``rows[j]``.

    ``targets``: one feature dict per target image (``{layer: (1, ...)}``, from
    the same ``extractor``); ``tasks``: one ``Task`` per row of the full batch.
    """

    def __init__(self, extractor: FeatureExtractor, targets: list[dict[str, torch.Tensor]], tasks: list[Task]):
        if not tasks:
            raise ValueError("no tasks to optimise")
        self.extractor = extractor
        self.tasks = list(tasks)
        # group the rows by what they compute: (analysis, condition, K)
        self._groups: dict[tuple, list[int]] = {}
        for i, t in enumerate(self.tasks):
            if not 0 <= t.target < len(targets):
                raise ValueError(f"task {i} names target {t.target} but there are {len(targets)}")
            self._groups.setdefault((t.analysis, t.condition, t.k), []).append(i)
        self._group_of = torch.empty(len(self.tasks), dtype=torch.long)
        self._refs: list[dict] = []  # per group: {layer: (rows of the group, ...) target tensor}
        self._scales: list[dict] = []
        with torch.no_grad():
            for g, ((analysis, cond, k), rows) in enumerate(self._groups.items()):
                self._group_of[rows] = g
                feats = [targets[self.tasks[i].target] for i in rows]
                ref, scale = {}, {}
                for name in feats[0]:
                    t = torch.cat([f[name] for f in feats])
                    if analysis == "reconstruct":
                        ref[name] = masked(t, cond, k)
                        scale[name] = t.pow(2).flatten(1).sum(1).clamp_min(1e-30)
                    else:
                        ref[name] = gram_matrix(masked(t, cond, k))
                        scale[name] = gram_matrix(t).pow(2).flatten(1).sum(1).clamp_min(1e-30)
                self._refs.append(ref)
                self._scales.append(scale)
        self._keys = list(self._groups)
        self._position = {}  # row -> its position inside its group
        for rows in self._groups.values():
            for p, i in enumerate(rows):
                self._position[i] = p

    def __len__(self) -> int:
        return len(self.tasks)

    def __call__(self, images: torch.Tensor, rows=None) -> torch.Tensor:
        rows = list(range(len(self.tasks))) if rows is None else [int(r) for r in rows]
        if images.shape[0] != len(rows):
            raise ValueError(f"{images.shape[0]} images for {len(rows)} rows")
        # run the batch sorted by group, so each group's features are one slice of ``torch.split``
        # (whose backward is one concatenation; per-group index_select would scatter into a
        # full-size zero tensor per group and layer, a third of the time of a 14-row batch)
        order = sorted(range(len(rows)), key=lambda j: (int(self._group_of[rows[j]]), j))
        if order != list(range(len(rows))):
            images = images.index_select(0, torch.tensor(order, device=images.device))
        sorted_rows = [rows[j] for j in order]
        groups = [int(self._group_of[r]) for r in sorted_rows]
        sizes = [groups.count(g) for g in dict.fromkeys(groups)]
        features = {n: t.split(sizes) for n, t in self.extractor(images).items()}
        parts, start = [], 0
        for i, g in enumerate(dict.fromkeys(groups)):
            analysis, cond, k = self._keys[g]
            pos = torch.tensor([self._position[r] for r in sorted_rows[start : start + sizes[i]]],
                               device=images.device)
            start += sizes[i]
            f = {n: t[i] for n, t in features.items()}
            ref = {n: t.index_select(0, pos) for n, t in self._refs[g].items()}
            scale = {n: t.index_select(0, pos) for n, t in self._scales[g].items()}
            if analysis == "reconstruct":
                parts.append(reconstruction_loss(f, ref, scale))
            else:
                parts.append(texture_loss(f, ref, scale, cond, k))
        losses = torch.cat(parts)
        if order == list(range(len(rows))):
            return losses
        inverse = torch.empty(len(rows), dtype=torch.long)
        inverse[torch.tensor(order)] = torch.arange(len(rows))
        return losses.index_select(0, inverse.to(losses.device))
