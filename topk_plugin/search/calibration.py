"""The calibrated constants of a search's settings, with as few passes as possible.

Two kinds of setting need dataset constants: Top-K with ``fill="shift"`` (the
shift) and the ``op="stats-norm"`` control (each channel's ``mean`` and ``std``).
``topk_plugin.calibrate`` costs one pass over the images per calibrated layer. A
search calibrates dozens of settings, so it shares work: every single-layer
setting's constants are statistics of the dense activations, all measured in one
dense pass (a stats-norm layer's constants do not depend on the strength, so its
strengths share one measurement); a combination reuses the constants of the
single layer that runs first (nothing runs before it) and calibrates only its
later layers, with the earlier ones active. The results equal ``calibrate`` on
each setting alone (tested).
"""
from __future__ import annotations

from collections import defaultdict

from torch import nn

from ..calibrate import calibrate, measurement
from ..layers import forward_with_hooks
from ..modules import ChannelStatsNorm
from ..surgery import attached
from .candidates import probe_shapes
from .evaluate import Setting

__all__ = ["calibrate_settings", "needs_calibration"]


def needs_calibration(s: Setting) -> bool:
    """Whether ``s`` has dataset constants to measure."""
    return s.op == "stats-norm" or (s.op == "topk" and s.fill == "shift")


def _what(s: Setting) -> tuple:
    """What a single layer's constants depend on besides the layer: the shift on K, the stats on nothing."""
    return ("stats",) if s.op == "stats-norm" else ("shift", s.k)


def _as_json(op: nn.Module) -> list | dict:
    """An op's calibrated constants as ``Setting.ops`` takes them back (lists of floats, exact)."""
    if isinstance(op, ChannelStatsNorm):
        return {"mean": op.mean.tolist(), "std": op.std.tolist()}
    return op.shift.tolist()


def _single_constants(model: nn.Module, settings: list[Setting], batches) -> dict[Setting, dict]:
    """Every single-layer setting's constants from one dense pass."""
    at = defaultdict(dict)  # layer -> {what: (an op to calibrate, its accumulator)}
    for s in settings:
        layer = s.layers[0]
        if _what(s) not in at[layer]:
            op = s.ops(0)[layer]
            at[layer][_what(s)] = (op, measurement(op))

    def record(layer, output) -> None:  # a forward hook's return value would replace the output
        for _, accumulator in at[layer].values():
            accumulator.add(output)

    modules = {name: m for name, m in model.named_modules() if name in at}
    for x in batches:
        forward_with_hooks(model, x, modules, record)
    for pairs in at.values():
        for op, accumulator in pairs.values():
            accumulator.assign(op, accumulator.value())
    return {s: {s.layers[0]: _as_json(at[s.layers[0]][_what(s)][0])} for s in settings}


def calibrate_settings(model: nn.Module, settings: list[Setting], batches, known: dict | None = None) -> dict:
    """``{setting: {layer: constants}}`` for the settings that need calibration (see :meth:`Setting.ops`).

    ``batches``: normalised calibration inputs for ``model``, re-iterable (one
    pass per calibrated layer; the model runs as it is now: put it in eval mode);
    settings already in ``known`` are not measured again.
    """
    constants = dict(known or {})
    todo = [s for s in dict.fromkeys(settings) if needs_calibration(s) and s not in constants]
    if not todo:
        return constants
    singles = [s for s in todo if len(s.layers) == 1]
    constants.update(_single_constants(model, singles, batches))
    combos = [s for s in todo if len(s.layers) > 1]
    if combos:
        order = {name: i for i, name in enumerate(probe_shapes(model, next(iter(batches))[:1]))}  # call order
        single = {(_what(s), s.layers[0]): v for s, v in constants.items() if len(s.layers) == 1}
        for s in combos:
            first = min(s.layers, key=order.__getitem__)
            given = single.get((_what(s), first), {})
            ops = s.ops(0, given)
            with attached(model, ops):
                calibrate(model, batches, layers=[layer for layer in s.layers if layer not in given])
            constants[s] = {layer: _as_json(ops[layer]) for layer in s.layers}
    return constants
