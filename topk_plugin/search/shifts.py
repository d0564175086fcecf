"""The calibrated shifts of a search's ``fill="shift"`` settings, with as few passes as possible.

``topk_plugin.calibrate`` costs one pass over the images per shift layer. A
search calibrates dozens of settings, so it shares work: every single-layer
setting's shift is a statistic of the dense activations, all measured in one
dense pass; a combination reuses the shift of the single layer that runs first
(nothing runs before it) and calibrates only its later layers. The results equal
``calibrate`` on each setting alone (tested).
"""
from __future__ import annotations

from collections import defaultdict

from torch import nn

from ..calibrate import RemovedMean, calibrate
from ..layers import forward_with_hooks
from ..surgery import attached
from .candidates import probe_shapes
from .evaluate import Setting

__all__ = ["calibrate_settings"]


def _single_shifts(model: nn.Module, settings: list[Setting], batches) -> dict[Setting, dict]:
    """Every single-layer setting's shift from one dense pass."""
    at = defaultdict(list)
    for s in settings:
        at[s.layers[0]].append((s, RemovedMean(s.ops(0)[s.layers[0]])))

    def record(layer, output) -> None:  # a forward hook's return value would replace the output
        for _, mean in at[layer]:
            mean.add(output)

    modules = {name: m for name, m in model.named_modules() if name in at}
    for x in batches:
        forward_with_hooks(model, x, modules, record)
    return {s: {s.layers[0]: mean.value().tolist()} for pairs in at.values() for s, mean in pairs}


def calibrate_settings(model: nn.Module, settings: list[Setting], batches, known: dict | None = None) -> dict:
    """``{setting: {layer: shift as a list of floats}}`` for the ``fill="shift"`` settings.

    ``batches``: normalised calibration inputs for ``model``, re-iterable (one
    pass per calibrated layer; the model runs as it is now: put it in eval mode); settings already in ``known`` are not measured again.
    """
    shifts = dict(known or {})
    todo = [s for s in dict.fromkeys(settings) if s.op == "topk" and s.fill == "shift" and s not in shifts]
    if not todo:
        return shifts
    singles = [s for s in todo if len(s.layers) == 1]
    shifts.update(_single_shifts(model, singles, batches))
    combos = [s for s in todo if len(s.layers) > 1]
    if combos:
        order = {name: i for i, name in enumerate(probe_shapes(model, next(iter(batches))[:1]))}  # call order
        single = {(s.k, s.layers[0]): v for s, v in shifts.items() if len(s.layers) == 1}
        for s in combos:
            first = min(s.layers, key=order.__getitem__)
            given = single.get((s.k, first), {})
            ops = s.ops(0, given)
            with attached(model, ops):
                calibrate(model, batches, layers=[layer for layer in s.layers if layer not in given])
            shifts[s] = {layer: ops[layer].shift.tolist() for layer in s.layers}
    return shifts
