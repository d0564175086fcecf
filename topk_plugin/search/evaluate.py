"""Score many placements in one pass over the data: shape bias and ImageNet top-1 per setting.

Each batch is decoded once for all settings. With ``cache=True`` the dense
prefix up to a setting's first layer is computed once per batch and shared by
every setting that starts there (``PrefixRunner``); ``cache=False`` runs the
whole model per setting (the naive search, same numbers). Under torchrun each
process scores its shard of the images and every process gets all the scores.
"""
from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from .._model import model_device, model_dtype
from ..distributed import current, gather, in_index_order, shard
from ..modules import ChannelStatsNorm, RandomK, TopK
from ..shape_bias.batches import inference, model_normalization, stream_batches
from ..shape_bias.evaluate import stimulus_trials
from ..shape_bias.imagenet import ImageNetImages, top1_hits
from ..shape_bias.metrics import shape_bias
from ..shape_bias.stimuli import Stimuli
from ..stats_norm import validate_strength
from ..surgery import _layer_seed, attached
from .prefix import PrefixRunner

__all__ = ["Setting", "Scores", "evaluate_settings", "FAMILIES"]


# The op families a search compares, each with its own parameter: Top-K (K, as a fraction, and a
# fill) and the per-image channel-statistics control (a strength). "random" is Top-K's control of
# the positions (same K), scored beside the Top-K front, not a family of its own.
FAMILIES = ("topk", "stats-norm")


@dataclass(frozen=True)
class Setting:
    """One placement: the op after each of ``layers``, all with the same parameter.

    ``op="topk"`` / ``"random"``: ``k`` (a fraction) and ``fill``. ``op="stats-norm"``:
    ``strength`` in (0, 1] and no ``k`` or ``fill`` (both None), e.g.
    ``Setting(("features.7",), op="stats-norm", strength=0.35)``.
    """

    layers: tuple[str, ...]
    k: float | None = None
    op: str = "topk"
    fill: str | None = "zero"
    strength: float | None = None

    def __post_init__(self):
        if self.op == "stats-norm":
            if self.k is not None:
                raise ValueError(f"a stats-norm setting has a strength, not a K (got k={self.k!r})")
            if self.fill not in (None, "zero"):
                raise ValueError(f"a stats-norm setting has no fill (got fill={self.fill!r})")
            object.__setattr__(self, "fill", None)  # "zero" is only the field's default
            object.__setattr__(self, "strength", validate_strength(self.strength))
        elif self.op in ("topk", "random"):
            if self.k is None or self.strength is not None:
                raise ValueError(f"a {self.op} setting has a K and no strength (got k={self.k!r}, "
                                 f"strength={self.strength!r})")
        else:
            raise ValueError(f"op={self.op!r} is not one of 'topk', 'random', 'stats-norm'")

    @property
    def family(self) -> str:
        """``"stats-norm"`` for the control op, else ``"topk"``."""
        return "stats-norm" if self.op == "stats-norm" else "topk"

    def parameter(self) -> str:
        """``k=0.2`` (with ``fill=...`` unless zero) or ``strength=0.35``: the setting without its layers."""
        if self.op == "stats-norm":
            return f"strength={self.strength:g}"
        return f"k={self.k:g}" + ("" if self.fill == "zero" else f" fill={self.fill}")

    def label(self) -> str:
        if self.op == "stats-norm":
            return f"stats-norm {self.strength:g} @ {'+'.join(self.layers)}"
        return f"{self.op} {self.k:g} @ {'+'.join(self.layers)}" + ("" if self.fill == "zero" else f" fill={self.fill}")

    def ops(self, seed: int, constants: dict | None = None) -> dict[str, nn.Module]:
        """Fresh op modules, one per layer (``RandomK`` streams as ``sparsify(op='random', seed=seed)``).

        ``constants``: calibrated values per layer, ``{layer: shift list}`` for ``fill="shift"``,
        ``{layer: {"mean": [...], "std": [...]}}`` for ``op="stats-norm"``; layers without one are
        uncalibrated (``topk_plugin.calibrate`` measures them).
        """
        constants = constants or {}
        if self.op == "stats-norm":
            return {layer: ChannelStatsNorm(self.strength, **constants.get(layer, {})) for layer in self.layers}
        if self.op == "topk":
            return {layer: TopK(self.k, fill=self.fill, shift=constants.get(layer)) for layer in self.layers}
        return {layer: RandomK(self.k, seed=_layer_seed(seed, layer)) for layer in self.layers}


@dataclass
class Scores:
    shape_bias: float
    shape_or_texture: float
    accuracy: float  # 16-class accuracy against the shape label (on a shape-only set: the only score)
    imagenet_top1: float  # NaN when the pass had no ImageNet images
    near_chance: bool
    decisions: tuple = field(default=(), repr=False)  # per stimulus (cue-conflict or shape-only), in data order
    hits: tuple = field(default=(), repr=False)  # per ImageNet image: top-1 correct?

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("decisions", "hits")}


class _Tally:
    """Per-setting ``(index, trial)`` and ``(index, hit)`` pairs of this process' shard."""

    def __init__(self):
        self.trials = defaultdict(list)
        self.hits = defaultdict(list)

    def add(self, key, dataset, indices, logits):
        if isinstance(dataset, Stimuli):
            self.trials[key] += zip(indices.tolist(), stimulus_trials(dataset, indices, logits, "search"), strict=True)
        else:
            self.hits[key] += zip(indices.tolist(), top1_hits(dataset, indices, logits), strict=True)


def _scores(tallies: list[_Tally], key) -> Scores:
    """One setting's scores from every process' tally, in image order."""
    trials = in_index_order(t.trials[key] for t in tallies)
    hits = in_index_order(t.hits[key] for t in tallies)
    result = shape_bias(trials, "search")
    top1 = sum(hits) / len(hits) if hits else math.nan
    return Scores(result.shape_bias, result.shape_or_texture, result.accuracy, top1,
                  result.near_chance, tuple(t.decision for t in trials), tuple(hits))


def evaluate_settings(
    model: nn.Module,
    settings: list[Setting],
    cue: Stimuli,
    imagenet: ImageNetImages | None,
    *,
    cache: bool = True,
    runner: PrefixRunner | None = None,
    seed: int = 0,
    batch_size: int = 32,
    workers: int = 2,
    device=None,
    progress: bool = True,
    dense: bool = True,
    calibration: dict | None = None,
) -> tuple[Scores | None, dict[Setting, Scores], dict]:
    """``(dense scores, {setting: scores}, timing)`` for ``model`` on both data sets.

    ``cue`` is any stimulus set (cue-conflict, or a shape-only set whose
    scores are then its decisions and accuracy); ``imagenet`` may be None
    (top-1 is then NaN).

    ``runner`` (built once per model and candidate list) is reused if given;
    with ``cache=True`` and none given one is built for the settings' layers.
    ``dense=False`` skips the dense model (its scores are then None; with the
    cache, each batch stops after the last layer a setting starts at).
    ``calibration``: ``{setting: constants}`` of the settings that need them (``fill="shift"``,
    ``op="stats-norm"``; see :meth:`Setting.ops`).
    """
    settings = list(dict.fromkeys(settings))
    ops = {s: s.ops(seed, (calibration or {}).get(s)) for s in settings}
    if cache and runner is None:
        runner = PrefixRunner(model, list(dict.fromkeys(layer for s in settings for layer in s.layers)))
    starts = defaultdict(list)
    if cache:
        order = {layer: i for i, layer in enumerate(runner.cuts)}
        for s in settings:
            first = min(s.layers, key=order.__getitem__)
            starts[first].append((s, first))
        last_start = max(starts, key=order.__getitem__, default=None)
    mean, std = model_normalization(model)
    device = torch.device(device) if device is not None else model_device(model)
    dtype = model_dtype(model)
    env = current()  # under torchrun: this process' shard of each data set, then every shard's results
    timing = {"data_wait": 0.0, "model": 0.0}
    start = time.perf_counter()
    data = [d for d in (cue, imagenet) if d is not None]
    total = sum(map(len, data))

    def work() -> _Tally:
        tally = _Tally()
        with inference(model, device=device), tqdm(total=total, desc=f"{len(settings)} settings", unit="img",
                                    disable=not (progress and env.main)) as bar:
            for dataset in data:
                for x, indices, wait in stream_batches(shard(dataset, env), batch_size=batch_size, workers=workers,
                                                       device=device, mean=mean, std=std, dtype=dtype):
                    timing["data_wait"] += wait
                    tick = time.perf_counter()
                    if cache:
                        for layer, state in runner.walk(x):
                            if layer is None:
                                tally.add(None, dataset, indices, state)
                                break
                            for s, first in starts.get(layer, []):
                                later = {name: op for name, op in ops[s].items() if name != first}
                                with attached(model, later):
                                    out = runner.tail(first, state, ops[s][first](runner.value(first, state)))
                                tally.add(s, dataset, indices, out)
                            if layer == last_start and not dense:
                                break  # the rest of the walk would only give the dense output
                    else:
                        if dense:
                            tally.add(None, dataset, indices, model(x))
                        for s in settings:
                            with attached(model, ops[s]):
                                tally.add(s, dataset, indices, model(x))
                    timing["model"] += time.perf_counter() - tick
                    bar.update(len(indices) * env.world)
        return tally

    tallies = gather(env, work)
    timing["seconds"] = time.perf_counter() - start
    return (_scores(tallies, None) if dense else None), {s: _scores(tallies, s) for s in settings}, timing
