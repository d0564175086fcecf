"""``search_placement``: find where Top-K raises shape bias most for a given loss in recognition.

Phases, each one pass over the data (``evaluate_settings``):

1. every eligible single layer at every K;
2. combinations of 2..``max_layers`` of the ``beam`` best single layers per K
   (best shape bias among those within the budget);
3. the random-K control (same layers and K) for every front point and the best.

Each phase searches every fill in ``fills`` (``"zero"``, the paper's op, by
default); the ``fill="shift"`` settings are calibrated on the search's own
ImageNet images (unlabeled use) before they are scored. With held-out images,
the best is also reported with every fill at its layers and K (the
decomposition: zero / shift / image-mean).

The result holds every evaluated setting, the Pareto front of shape bias vs
ImageNet top-1, and ``best``: the highest shape bias with top-1 at most
``budget`` percentage points below the dense model.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from .._model import model_device, model_dtype
from ..distributed import current
from ..functional import FILLS
from ..placement_spec import PlacementSpec
from ..shape_bias.batches import inference, model_normalization, stream_batches
from ..shape_bias.dataset import CueConflictDataset
from ..shape_bias.imagenet import ImageNetImages
from ..shape_bias.intervals import cue_conflict_intervals, top1_intervals
from ..shape_bias.plot import plot_tradeoff
from .candidates import eligible_layers
from .checkpoint import SearchCheckpoint
from .evaluate import Scores, Setting, evaluate_settings
from .front import best_within_budget, pareto_front
from .prefix import PrefixRunner, TraceError
from .shifts import calibrate_settings

__all__ = ["SearchResult", "search_placement"]


def scores_with_intervals(scores: Scores, labels: list, dense: Scores | None = None, seed: int = 0) -> dict:
    """``scores`` as JSON plus ``*_ci`` and, given ``dense`` on the same images, ``delta_*`` and their ``_ci``."""
    row = scores.to_json()
    if labels and scores.decisions:
        row.update(cue_conflict_intervals(scores.decisions, labels, None if dense is None else dense.decisions, seed=seed))
    if scores.hits:
        row.update(top1_intervals(scores.hits, None if dense is None else dense.hits, seed=seed))
    return row


@dataclass
class SearchResult:
    model: str
    candidates: list[str]
    budget: float
    dense: Scores
    evaluated: dict  # Setting -> Scores (Top-K)
    front: list  # Settings
    best: Setting | None
    controls: dict = field(default_factory=dict)  # Top-K Setting -> random-K Scores
    timing: dict = field(default_factory=dict)
    labels: list = field(default_factory=list)  # (shape, texture) per search cue-conflict image
    report: dict = field(default_factory=dict)  # Setting -> Scores on the held-out images
    report_dense: Scores | None = None
    report_labels: list = field(default_factory=list)
    holdout: dict | None = None  # how the images were split (None: no held-out report)
    shifts: dict = field(default_factory=dict)  # fill="shift" Setting -> {layer: calibrated shift}
    decomposition: list = field(default_factory=list)  # the best's layers and K with each fill (held out)
    seed: int = 0  # the search's seed: the random-K control's and the bootstrap intervals'
    _rows: dict = field(default_factory=dict, repr=False, compare=False)  # intervals, computed once per row

    def _with_intervals(self, scores: Scores, labels: list, dense: Scores | None) -> dict:
        key = (id(scores), id(dense))
        if key not in self._rows:
            self._rows[key] = scores_with_intervals(scores, labels, dense, seed=self.seed)
        return dict(self._rows[key])

    def _scores(self, scores: Scores, dense: Scores | None) -> dict:
        return self._with_intervals(scores, self.labels, dense)

    def _reported(self, s) -> dict:
        scores, dense = (self.report_dense, None) if s is None else (self.report[s], self.report_dense)
        return self._with_intervals(scores, self.report_labels, dense)

    def _row(self, s: Setting) -> dict:
        row = {"layers": list(s.layers), "topk": s.k, "op": s.op, "fill": s.fill,
               **self._scores(self.evaluated[s], self.dense)}
        if s in self.controls:
            row["control"] = {"op": "random", **self._scores(self.controls[s], self.dense)}
        if s in self.report:
            row["report"] = self._reported(s)
        return row

    def _decomposition(self) -> list[dict]:
        """The best's layers and K with each fill on the held-out images, each also paired with fill='zero'."""
        zero = next((s for s in self.decomposition if s.fill == "zero"), None)
        rows = []
        for s in self.decomposition:
            row = {"layers": list(s.layers), "topk": s.k, "fill": s.fill, **self._reported(s)}
            if zero is not None and s != zero:
                paired = self._with_intervals(self.report[s], self.report_labels, self.report[zero])
                row["vs_zero"] = {key: value for key, value in paired.items() if key.startswith("delta_")}
            rows.append(row)
        return rows

    def to_json(self) -> dict:
        dense = {"op": "dense", **self._scores(self.dense, None)}
        if self.report_dense is not None:
            dense["report"] = self._reported(None)
        return {
            "model": self.model,
            "seed": self.seed,
            "budget": self.budget,
            "candidates": self.candidates,
            "holdout": self.holdout,
            "dense": dense,
            "front": [self._row(s) for s in self.front],
            "best": None if self.best is None else self._row(self.best),
            "evaluated": [self._row(s) for s in self.evaluated],
            "decomposition": self._decomposition(),
            "timing": self.timing,
        }

    def plot(self, path) -> list:
        """Shape bias vs top-1 of every setting, the front, the controls and the budget (PNG + PDF)."""
        def point(scores, kind, label=None):
            return {"shape_bias": scores.shape_bias, "imagenet_top1": scores.imagenet_top1, "kind": kind, "label": label}

        def with_ci(row: dict, kind: str, label=None) -> dict:
            return {**row, "kind": kind, "label": label}

        points = [with_ci(self._scores(self.dense, None), "dense")]
        points += [point(v, "topk") for s, v in self.evaluated.items() if s not in self.front]
        points += [with_ci(self._scores(self.evaluated[s], self.dense), "topk",
                           f"{s.k:g}@{'+'.join(s.layers)}" + ("" if s.fill == "zero" else f" {s.fill}"))
                   for s in self.front]
        points += [point(v, "random") for v in self.controls.values()]
        if self.best is not None:
            points.append(with_ci(self._scores(self.evaluated[self.best], self.dense), "best"))
        title = f"{self.model}: placement search (budget {self.budget:g} points)"
        if self.report_dense is not None:
            points.append(with_ci(self._reported(None), "held-out dense"))
            points += [with_ci(self._reported(s), "held-out") for s in self.report]
            title += "\nfilled: search images; diamonds: the same settings on held-out images"
        front = [point(self.evaluated[s], "front") for s in self.front]
        return plot_tradeoff(points, path, title=title, front=front,
                             budget_top1=self.dense.imagenet_top1 - self.budget / 100)

    def best_spec(self) -> PlacementSpec | None:
        """The best setting as a placement spec file's content (None if none is within budget)."""
        if self.best is None:
            return None
        s = self.best
        provenance = {"found_by": "topk-plugin search-placement", "budget_points": self.budget,
                      **self.evaluated[s].to_json(), "dense": self.dense.to_json()}
        if s in self.report:
            provenance["held_out"] = {**self.report[s].to_json(), "dense": self.report_dense.to_json(),
                                      "split": self.holdout}
        return PlacementSpec(layers={layer: s.k for layer in s.layers}, op="topk", model=self.model,
                             options={} if s.fill == "zero" else {"fill": s.fill}, provenance=provenance,
                             shift=dict(self.shifts.get(s, {})))


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
) -> SearchResult:
    """Search Top-K placements of ``model`` (see the module doc); returns a ``SearchResult``.

    ``checkpoint``: a JSON file written atomically after each phase; with
    ``resume=True`` the phases it holds are not run again (same results).
    ``report``: ``(cue, imagenet)`` images the search does not see, on which the
    front and the best are scored again (``holdout_split`` makes both halves;
    ``holdout`` describes the split in the result).
    ``fills``: the fills searched (see :func:`topk_plugin.functional.spatial_topk`).
    ``seed``: of the random-K control and of the bootstrap intervals (recorded in the result).
    """
    if max_layers < 1 or beam < 1:
        raise ValueError(f"max_layers ({max_layers}) and beam ({beam}) must be >= 1")
    if budget < 0:
        raise ValueError(f"budget must be >= 0 percentage points, got {budget}")
    fills = tuple(dict.fromkeys(fills))
    if not fills or any(f not in FILLS for f in fills):
        raise ValueError(f"fills {list(fills)} must be one or more of {', '.join(map(repr, FILLS))}")
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
    state = SearchCheckpoint(checkpoint, config, resume, write=current().main)  # under torchrun: rank 0 writes

    def calibrated(settings: list[Setting]) -> float:
        """Calibrate the new shift settings on the search's ImageNet images (decoded again per pass,
        so a full-size ImageNet is never held in memory); returns the seconds spent."""
        if all(s.fill != "shift" or s in state.shifts for s in settings):
            return 0.0
        tick = time.perf_counter()
        mean, std = model_normalization(model)
        dev = torch.device(device) if device is not None else model_device(model)
        images = _Images(imagenet, dict(batch_size=batch_size, workers=workers, device=dev, mean=mean, std=std,
                                        dtype=model_dtype(model)))
        with inference(model, device=dev):
            state.shifts = calibrate_settings(model, settings, images, state.shifts)
        return time.perf_counter() - tick

    def phase(label: str, settings: list[Setting], dense: bool = False, data=None) -> dict:
        """``data``: other images than the search's (the report half), with their own dense scores."""
        if state.done(label) is None:
            seconds = calibrated(settings)
            if seconds:
                state.timing[f"{label}_calibration"] = seconds  # also inside the phase's time
            scored_dense, scored, t = evaluate_settings(model, settings, *(data or (cue, imagenet)), dense=dense,
                                                        shifts=state.shifts, **common)
            state.save(label, scored, seconds + t["seconds"], scored_dense, own_dense=data is not None)
        return state.done(label)

    evaluated = dict(phase("singles", [Setting((layer,), k, "topk", f) for f in fills for k in topks
                                       for layer in candidates], dense=True))
    dense = state.dense
    combos = []
    order = {layer: i for i, layer in enumerate(candidates)}
    for f in fills:
        for k in topks:
            ok = {s: v for s, v in evaluated.items() if s.k == k and s.fill == f}
            within = [s for s in ok if (dense.imagenet_top1 - ok[s].imagenet_top1) * 100 <= budget]
            top = sorted(within, key=lambda s: -ok[s].shape_bias)[:beam]
            layers = sorted((s.layers[0] for s in top), key=order.__getitem__)
            for size in range(2, max_layers + 1):
                combos += [Setting(group, k, "topk", f) for group in itertools.combinations(layers, size)]
    if combos:
        evaluated.update(phase("combinations", combos))

    front = [s for s in pareto_front({**evaluated, None: dense}) if s is not None]
    best = best_within_budget(evaluated, dense.imagenet_top1, budget)
    controls = {}
    chosen = list(dict.fromkeys(front + ([best] if best else [])))
    zero_fill = [s for s in chosen if s.fill == "zero"]  # the control is the paper's op with random positions
    if control and zero_fill:
        random = {s: Setting(s.layers, s.k, "random") for s in zero_fill}
        scored = phase("controls", list(random.values()))
        controls = {s: scored[r] for s, r in random.items()}
    reported, report_dense, decomposition = {}, None, []
    if report is not None:
        if best is not None:
            decomposition = [Setting(best.layers, best.k, "topk", f) for f in FILLS]
        # dense alone if nothing was chosen
        reported = dict(phase("report", list(dict.fromkeys(chosen + decomposition)), dense=True, data=report))
        report_dense = state.phase_dense["report"]
    timing = dict(state.timing)
    timing["total"] = time.perf_counter() - start
    timing["cache"] = cache
    timing["settings"] = len(evaluated) + len(controls)
    return SearchResult(name, list(candidates), budget, dense, evaluated, front, best, controls, timing,
                        labels=cue.label_pairs(), report=reported, report_dense=report_dense,
                        report_labels=report[0].label_pairs() if report is not None else [], holdout=holdout,
                        shifts={s: v for s, v in state.shifts.items() if s in evaluated or s in reported},
                        decomposition=decomposition, seed=seed)
