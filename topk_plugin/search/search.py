"""``search_placement``: find where Top-K raises shape bias most for a given loss in recognition.

Phases, each one pass over the data (``evaluate_settings``):

1. every eligible single layer at every parameter of every op family: each K
   (and fill) for Top-K, each strength for the ``"stats-norm"`` control;
2. combinations of 2..``max_layers`` of the ``beam`` best single layers per
   parameter (best shape bias among those within the budget);
3. the random-K control (same layers and K) for every Top-K front point and the best;
4. (reporting only) with held-out images, the fronts, the bests and dense again on them;
   and on every shape-only dataset given (edge, silhouette, ...), the same settings:
   16-class accuracy and error consistency with the humans, never used for choosing.

Each phase searches every fill in ``fills`` (``"zero"``, the paper's op, by
default); the ``fill="shift"`` and ``"stats-norm"`` settings are calibrated on
the search's own ImageNet images (unlabeled use) before they are scored. With
held-out images, the fronts and bests are scored again there, and the Top-K
best is also reported with every fill at its layers and K (the decomposition:
zero / shift / image-mean).

The result holds every evaluated setting, the Pareto front of shape bias vs
ImageNet top-1 and ``best`` of each family (the highest shape bias with top-1
at most ``budget`` percentage points below the dense model), and with both
families their paired difference (``SearchResult.comparison``).
"""
from __future__ import annotations

import dataclasses
import itertools
import time

import torch
from torch import nn

from .._model import model_device, model_dtype
from ..distributed import current
from ..functional import FILLS
from ..shape_bias.batches import inference, model_normalization, stream_batches
from ..shape_bias.dataset import CueConflictDataset
from ..shape_bias.imagenet import ImageNetImages
from ..stats_norm import validate_strength
from .calibration import calibrate_settings, needs_calibration
from .candidates import eligible_layers
from .checkpoint import SearchCheckpoint
from .evaluate import FAMILIES, Setting, evaluate_settings
from .front import best_within_budget, pareto_front
from .prefix import PrefixRunner, TraceError
from .result import SearchResult, ShapeOnlyScores

__all__ = ["SearchResult", "ShapeOnlyScores", "search_placement"]


class _Images:
    """Re-iterable normalised batches of a dataset: each pass decodes them again."""

    def __init__(self, dataset, options: dict):
        self.dataset, self.options = dataset, options

    def __iter__(self):
        return (x for x, _, _ in stream_batches(self.dataset, **self.options))


def search_placement(
    model: nn.Module,
    cue: CueConflictDataset,
    imagenet: ImageNetImages,
    *,
    name: str = "model",
    topks=(0.05, 0.1, 0.2),
    candidates: list[str] | None = None,
    max_layers: int = 2,
    beam: int = 4,
    budget: float = 5.0,
    control: bool = True,
    cache: bool = True,
    seed: int = 0,
    batch_size: int = 32,
    workers: int = 2,
    device=None,
    progress: bool = True,
    checkpoint=None,
    resume: bool = False,
    report=None,
    holdout: dict | None = None,
    fills=("zero",),
    ops=("topk",),
    strengths=(0.1, 0.2, 0.35, 0.5),
    shape_only: dict | None = None,
    humans: dict | None = None,
) -> SearchResult:
    """Search Top-K placements of ``model`` (see the module doc); returns a ``SearchResult``.

    ``checkpoint``: a JSON file written atomically after each phase; with
    ``resume=True`` the phases it holds are not run again (same results).
    ``report``: ``(cue, imagenet)`` images the search does not see, on which the
    front and the best are scored again (``holdout_split`` makes both halves;
    ``holdout`` describes the split in the result).
    ``fills``: the fills searched (see :func:`topk_plugin.functional.spatial_topk`).
    ``ops``: the op families searched over the same candidate layers: ``"topk"`` (at ``topks`` and
    ``fills``) and ``"stats-norm"`` (the per-image channel-statistics control, at ``strengths``).
    ``seed``: of the random-K control and of the bootstrap intervals (recorded in the result).
    ``shape_only``: ``{name: ShapeOnlyDataset}`` on which dense, the fronts, the
    bests (and the decomposition) are scored after the search, never used for
    choosing; ``humans``: ``{name: HumanTrials}`` for their error consistency.
    """
    if max_layers < 1 or beam < 1:
        raise ValueError(f"max_layers ({max_layers}) and beam ({beam}) must be >= 1")
    if budget < 0:
        raise ValueError(f"budget must be >= 0 percentage points, got {budget}")
    fills = tuple(dict.fromkeys(fills))
    if not fills or any(f not in FILLS for f in fills):
        raise ValueError(f"fills {list(fills)} must be one or more of {', '.join(map(repr, FILLS))}")
    ops = tuple(dict.fromkeys(ops))
    if not ops or any(op not in FAMILIES for op in ops):
        raise ValueError(f"ops {list(ops)} must be one or more of {', '.join(map(repr, FAMILIES))}")
    strengths = tuple(dict.fromkeys(validate_strength(a) for a in strengths)) if "stats-norm" in ops else ()
    if "stats-norm" in ops and not strengths:
        raise ValueError("searching op 'stats-norm' needs at least one strength in (0, 1]")
    topks = tuple(topks) if "topk" in ops else ()
    start = time.perf_counter()
    if candidates is None:
        image = cue[0][0]
        example = torch.zeros(1, *image.shape, device=model_device(model), dtype=model_dtype(model))
        candidates = eligible_layers(model, example)
    runner = None
    if cache:
        try:
            runner = PrefixRunner(model, list(candidates))
        except TraceError as err:
            import warnings

            warnings.warn(f"{err}; searching without the prefix cache (same numbers, slower)", stacklevel=2)
            cache = False
    common = dict(cache=cache, runner=runner, seed=seed, batch_size=batch_size, workers=workers, device=device,
                  progress=progress)
    config = dict(model=name, candidates=list(candidates), topks=list(topks), max_layers=max_layers, beam=beam,
                  budget=budget, control=control, seed=seed, cue=[str(cue.root), len(cue)],
                  imagenet=[str(imagenet.root), len(imagenet)],
                  report=None if report is None else [len(report[0]), len(report[1])], holdout=holdout,
                  fills=list(fills))
    if ops != ("topk",):  # only then: a Top-K search's checkpoint reads as before the control existed
        config.update(ops=list(ops), strengths=list(strengths))
    if shape_only:  # only then: checkpoints of searches without them resume as before
        config["shape_only"] = {name: [str(data.root), len(data)] for name, data in shape_only.items()}
    state = SearchCheckpoint(checkpoint, config, resume, write=current().main)  # under torchrun: rank 0 writes

    def calibrated(settings: list[Setting]) -> float:
        """Calibrate the new shift and stats-norm settings on the search's ImageNet images (decoded again
        per pass, so a full-size ImageNet is never held in memory); returns the seconds spent."""
        if all(not needs_calibration(s) or s in state.calibration for s in settings):
            return 0.0
        tick = time.perf_counter()
        mean, std = model_normalization(model)
        dev = torch.device(device) if device is not None else model_device(model)
        images = _Images(imagenet, dict(batch_size=batch_size, workers=workers, device=dev, mean=mean, std=std,
                                        dtype=model_dtype(model)))
        with inference(model, device=dev):
            state.calibration = calibrate_settings(model, settings, images, state.calibration)
        return time.perf_counter() - tick

    def phase(label: str, settings: list[Setting], dense: bool = False, data=None) -> dict:
        """``data``: other images than the search's (the report half), with their own dense scores."""
        if state.done(label) is None:
            seconds = calibrated(settings)
            if seconds:
                state.timing[f"{label}_calibration"] = seconds  # also inside the phase's time
            scored_dense, scored, t = evaluate_settings(model, settings, *(data or (cue, imagenet)), dense=dense,
                                                        calibration=state.calibration, **common)
            state.save(label, scored, seconds + t["seconds"], scored_dense, own_dense=data is not None)
        return state.done(label)

    parameters = [Setting((), k, "topk", f) for f in fills for k in topks]  # each family's grid, no layers yet
    parameters += [Setting((), op="stats-norm", strength=a) for a in strengths]
    evaluated = dict(phase("singles", [dataclasses.replace(p, layers=(layer,)) for p in parameters
                                       for layer in candidates], dense=True))
    dense = state.dense
    combos = []
    order = {layer: i for i, layer in enumerate(candidates)}
    for p in parameters:
        ok = {s: v for s, v in evaluated.items() if dataclasses.replace(s, layers=()) == p}
        within = [s for s in ok if (dense.imagenet_top1 - ok[s].imagenet_top1) * 100 <= budget]
        top = sorted(within, key=lambda s, ok=ok: -ok[s].shape_bias)[:beam]
        layers = sorted((s.layers[0] for s in top), key=order.__getitem__)
        for size in range(2, max_layers + 1):
            combos += [dataclasses.replace(p, layers=group) for group in itertools.combinations(layers, size)]
    if combos:
        evaluated.update(phase("combinations", combos))

    fronts, bests = {}, {}
    for family in ops:
        mine = {s: v for s, v in evaluated.items() if s.family == family}
        fronts[family] = [s for s in pareto_front({**mine, None: dense}) if s is not None]
        bests[family] = best_within_budget(mine, dense.imagenet_top1, budget)
    primary = "topk" if "topk" in ops else ops[0]  # the result's `front` and `best`
    front, best = fronts[primary], bests[primary]
    controls = {}
    chosen = list(dict.fromkeys(s for family in ops for s in fronts[family] + ([bests[family]] if bests[family] else [])))
    zero_fill = [s for s in chosen if s.op == "topk" and s.fill == "zero"]  # the paper's op with random positions
    if control and zero_fill:
        random = {s: Setting(s.layers, s.k, "random") for s in zero_fill}
        scored = phase("controls", list(random.values()))
        controls = {s: scored[r] for s, r in random.items()}
    reported, report_dense, decomposition = {}, None, []
    if report is not None:
        if bests.get("topk") is not None:
            decomposition = [Setting(bests["topk"].layers, bests["topk"].k, "topk", f) for f in FILLS]
        # dense alone if nothing was chosen
        reported = dict(phase("report", list(dict.fromkeys(chosen + decomposition)), dense=True, data=report))
        report_dense = state.phase_dense["report"]
    scored_shape_only = {}
    for dataset, data in (shape_only or {}).items():
        label = f"shape-only:{dataset}"
        scored = dict(phase(label, list(dict.fromkeys(chosen + decomposition)), dense=True, data=(data, None)))
        scored_shape_only[dataset] = ShapeOnlyScores(str(data.root), data.image_names(), data.categories(),
                                                     state.phase_dense[label], scored, (humans or {}).get(dataset))
    timing = dict(state.timing)
    timing["total"] = time.perf_counter() - start
    timing["cache"] = cache
    timing["settings"] = len(evaluated) + len(controls)
    return SearchResult(name, list(candidates), budget, dense, evaluated, front, best, controls, timing,
                        labels=cue.label_pairs(), report=reported, report_dense=report_dense,
                        report_labels=report[0].label_pairs() if report is not None else [], holdout=holdout,
                        calibration={s: v for s, v in state.calibration.items() if s in evaluated or s in reported},
                        decomposition=decomposition, seed=seed, fronts=fronts, bests=bests,
                        shape_only=scored_shape_only)
