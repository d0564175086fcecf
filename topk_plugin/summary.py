"""What Top-K actually does in a sparsified model: K and the achieved sparsity per layer."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .attachment import sparsified_layers
from .functional import resolve_k
from .layers import forward_with_hooks

__all__ = ["SparsityRow", "sparsity_summary"]


@dataclass(frozen=True)
class SparsityRow:
    """One sparsified layer after a forward pass on an example input."""

    layer: str
    k: object
    K: int | None
    positions: int | None
    output_shape: tuple | None
    nonzero_fraction: float | None
    calls: int

    @property
    def sparsity(self) -> float | None:
        return None if self.nonzero_fraction is None else 1.0 - self.nonzero_fraction


def sparsity_summary(model: nn.Module, example_input) -> list[SparsityRow]:
    """Run ``example_input`` once and report, per sparsified layer, K and the
    fraction of nonzero outputs (over all calls of that layer).

    ``nonzero_fraction`` is at most ``K / positions`` and lower when fewer than
    K entries of a channel are nonzero (e.g. after a ReLU). An op without K
    (``op="stats-norm"``) has ``k`` and ``K`` None.
    """
    layers = sparsified_layers(model)
    modules = dict(model.named_modules())
    stats: dict[str, list] = {name: [] for name in layers}

    def record(name, output):  # registered after Top-K: sees its output
        if isinstance(output, torch.Tensor):
            c_dim = layers[name].channel_dim % output.ndim
            positions = output.numel() // (output.shape[0] * output.shape[c_dim])
            stats[name].append((tuple(output.shape), positions, int(output.count_nonzero()), output.numel()))

    forward_with_hooks(model, example_input, {name: modules[name] for name in layers}, record)
    rows = []
    for name, op in layers.items():
        calls = stats[name]
        k = getattr(op, "k", None)
        if not calls:
            rows.append(SparsityRow(name, k, None, None, None, None, 0))
            continue
        shape, positions = calls[-1][0], calls[-1][1]
        nonzero = sum(c[2] for c in calls) / sum(c[3] for c in calls)
        K = None if k is None else resolve_k(k, positions)
        rows.append(SparsityRow(name, k, K, positions, shape, nonzero, len(calls)))
    return rows
