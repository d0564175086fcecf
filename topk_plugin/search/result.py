"""What a placement search returns: its settings' scores with intervals, as JSON, a figure and specs.

One front and one best per op family (Top-K; with ``ops=("topk", "stats-norm")`` also the
per-image channel-statistics control), and with both families the paired difference
*best control minus best Top-K* on the same images (held out when there is a report half).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..placement_spec import PlacementSpec
from ..shape_bias.intervals import cue_conflict_intervals, top1_intervals
from ..shape_bias.plot import plot_tradeoff
from ..shape_bias.plot_suite import plot_shape_only
from ..shape_bias.shape_only_scores import human_reference, setting_scores
from .evaluate import Scores, Setting

__all__ = ["SearchResult", "ShapeOnlyScores", "scores_with_intervals", "setting_fields"]


def scores_with_intervals(scores: Scores, labels: list, dense: Scores | None = None, seed: int = 0) -> dict:
    """``scores`` as JSON plus ``*_ci`` and, given ``dense`` on the same images, ``delta_*`` and their ``_ci``."""
    row = scores.to_json()
    if labels and scores.decisions:
        row.update(cue_conflict_intervals(scores.decisions, labels, None if dense is None else dense.decisions, seed=seed))
    if scores.hits:
        row.update(top1_intervals(scores.hits, None if dense is None else dense.hits, seed=seed))
    return row


def setting_fields(s: Setting) -> dict:
    """How a setting shows in a JSON row: ``topk`` (its K) and ``fill``, or ``strength``."""
    if s.op == "stats-norm":
        return {"layers": list(s.layers), "op": s.op, "strength": s.strength}
    return {"layers": list(s.layers), "topk": s.k, "op": s.op, "fill": s.fill}


@dataclass
class ShapeOnlyScores:
    """One shape-only dataset in a search: dense's and the reported settings' decisions, and the humans."""

    root: str
    names: list  # image file names, in data order
    categories: list
    dense: Scores
    settings: dict  # Setting -> Scores
    humans: object = None  # HumanTrials, or None


def _deltas(row: dict) -> dict:
    return {key: value for key, value in row.items() if key.startswith("delta_")}


@dataclass
class SearchResult:
    model: str
    candidates: list[str]
    budget: float
    dense: Scores
    evaluated: dict  # Setting -> Scores (every family)
    front: list  # Settings: the front of the primary family (Top-K when searched)
    best: Setting | None  # the primary family's best within the budget
    controls: dict = field(default_factory=dict)  # Top-K Setting -> random-K Scores
    timing: dict = field(default_factory=dict)
    labels: list = field(default_factory=list)  # (shape, texture) per search cue-conflict image
    report: dict = field(default_factory=dict)  # Setting -> Scores on the held-out images
    report_dense: Scores | None = None
    report_labels: list = field(default_factory=list)
    holdout: dict | None = None  # how the images were split (None: no held-out report)
    calibration: dict = field(default_factory=dict)  # Setting -> {layer: constants}, see Setting.ops
    decomposition: list = field(default_factory=list)  # the Top-K best's layers and K with each fill (held out)
    seed: int = 0  # the search's seed: the random-K control's and the bootstrap intervals'
    fronts: dict = field(default_factory=dict)  # family -> its front (Settings); empty: only `front`
    bests: dict = field(default_factory=dict)  # family -> its best within the budget (or None)
    shape_only: dict = field(default_factory=dict)  # dataset -> ShapeOnlyScores of dense, fronts, bests, decomposition
    _rows: dict = field(default_factory=dict, repr=False, compare=False)  # intervals, computed once per row

    def __post_init__(self):
        if not self.fronts:  # a single-family result made by hand
            family = self.best.family if self.best is not None else "topk"
            self.fronts, self.bests = {family: list(self.front)}, {family: self.best}

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

    def _shape_only(self, s) -> dict:
        """``{dataset: accuracy and error consistency row}`` of setting ``s`` (None: dense) where it was scored."""
        out = {}
        for name, part in self.shape_only.items():
            if s is not None and s not in part.settings:
                continue
            key = ("shape-only", name, s)
            if key not in self._rows:
                scores, dense = (part.dense, None) if s is None else (part.settings[s], part.dense)
                self._rows[key] = setting_scores(scores.decisions, part.names, part.categories,
                                                 dense_decisions=None if dense is None else dense.decisions,
                                                 humans=part.humans, seed=self.seed)
            out[name] = dict(self._rows[key])
        return out

    def _row(self, s: Setting) -> dict:
        row = {**setting_fields(s), **self._scores(self.evaluated[s], self.dense)}
        if s in self.controls:
            row["control"] = {"op": "random", **self._scores(self.controls[s], self.dense)}
        if s in self.report:
            row["report"] = self._reported(s)
        shape_only = self._shape_only(s)
        if shape_only:
            row["shape_only"] = shape_only
        return row

    def _decomposition(self) -> list[dict]:
        """The best's layers and K with each fill on the held-out images, each also paired with fill='zero'."""
        zero = next((s for s in self.decomposition if s.fill == "zero"), None)
        rows = []
        for s in self.decomposition:
            row = {"layers": list(s.layers), "topk": s.k, "fill": s.fill, **self._reported(s)}
            if zero is not None and s != zero:
                paired = self._with_intervals(self.report[s], self.report_labels, self.report[zero])
                row["vs_zero"] = _deltas(paired)
            shape_only = self._shape_only(s)
            if shape_only:
                row["shape_only"] = shape_only
            rows.append(row)
        return rows

    def comparison(self) -> dict | None:
        """Best stats-norm minus best Top-K, paired on the same images: on the search half (where they
        were chosen) and on the held-out half. None unless both families have a best within the budget."""
        topk, control = self.bests.get("topk"), self.bests.get("stats-norm")
        if topk is None or control is None:
            return None
        out = {"control": "stats-norm", "topk_best": setting_fields(topk), "control_best": setting_fields(control),
               "search": _deltas(self._scores(self.evaluated[control], self.evaluated[topk]))}
        if topk in self.report and control in self.report:
            out["held_out"] = _deltas(self._with_intervals(self.report[control], self.report_labels,
                                                           self.report[topk]))
        return out

    def to_json(self) -> dict:
        dense = {"op": "dense", **self._scores(self.dense, None)}
        if self.report_dense is not None:
            dense["report"] = self._reported(None)
        if self.shape_only:
            dense["shape_only"] = self._shape_only(None)
        summary = {
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
            "shape_only": {name: {"root": part.root, "humans": None if part.humans is None else
                                  human_reference(part.humans, seed=self.seed)}
                           for name, part in self.shape_only.items()},
            "timing": self.timing,
        }
        if list(self.fronts) != ["topk"]:  # a control family was searched: each family's front and best
            summary["families"] = {family: {"front": [self._row(s) for s in front],
                                            "best": None if self.bests[family] is None else self._row(self.bests[family])}
                                   for family, front in self.fronts.items()}
            summary["comparison"] = self.comparison()
        return summary

    def shape_only_rows(self) -> list[dict]:
        """One row per (dense / each family's front and best, shape-only dataset), labelled, for the table and
        the plot."""
        settings = [None] + list(dict.fromkeys(s for family, front in self.fronts.items()
                                               for s in front + ([self.bests[family]] if self.bests[family] else [])))
        bests = set(self.bests.values())
        rows = []
        for s in settings:
            label = "dense" if s is None else s.label().removeprefix("topk ") + (" (best)" if s in bests else "")
            for name, row in self._shape_only(s).items():
                rows.append({"setting": label, "dataset": name, **row})
        return rows

    def plot_shape_only(self, path) -> list:
        """Accuracy and error consistency of dense, the fronts and the bests on each shape-only dataset (PNG + PDF)."""
        humans = [human_reference(p.humans, seed=self.seed) for p in self.shape_only.values() if p.humans is not None]
        return plot_shape_only(self.shape_only_rows(), humans, path, label_key="setting",
                               title=f"{self.model}: dense, fronts and bests on the shape-only datasets (not used "
                                     "for choosing)")

    def plot(self, path) -> list:
        """Shape bias vs top-1 of every setting, each family's front (own markers), the controls and the budget."""
        def point(scores, kind, label=None):
            return {"shape_bias": scores.shape_bias, "imagenet_top1": scores.imagenet_top1, "kind": kind, "label": label}

        def with_ci(row: dict, kind: str, label=None) -> dict:
            return {**row, "kind": kind, "label": label}

        def short(s: Setting) -> str:
            if s.op == "stats-norm":
                return f"a={s.strength:g}@{'+'.join(s.layers)}"
            return f"{s.k:g}@{'+'.join(s.layers)}" + ("" if s.fill == "zero" else f" {s.fill}")

        on_front = {s for front in self.fronts.values() for s in front}
        several = len(self.fronts) > 1  # then only the bests are labelled: two labelled fronts overlap
        points = [with_ci(self._scores(self.dense, None), "dense")]
        points += [point(v, s.family) for s, v in self.evaluated.items() if s not in on_front]
        points += [with_ci(self._scores(self.evaluated[s], self.dense), s.family, None if several else short(s))
                   for s in on_front]
        points += [point(v, "random") for v in self.controls.values()]
        for family, best in self.bests.items():
            if best is not None:
                points.append(with_ci(self._scores(self.evaluated[best], self.dense),
                                      "best" if family == "topk" else "best stats-norm", short(best) if several else None))
        title = f"{self.model}: placement search (budget {self.budget:g} points)"
        if self.report_dense is not None:
            points.append(with_ci(self._reported(None), "held-out dense"))
            points += [with_ci(self._reported(s), "held-out" if s.family == "topk" else "held-out stats-norm")
                       for s in self.report]
            title += "\npurple: the same settings on held-out images"
        fronts = {family: [point(self.evaluated[s], "front") for s in front] for family, front in self.fronts.items()}
        return plot_tradeoff(points, path, title=title, fronts=fronts,
                             budget_top1=self.dense.imagenet_top1 - self.budget / 100)

    def best_spec(self, family: str | None = None) -> PlacementSpec | None:
        """A family's best setting (default: the primary family's) as a placement spec file's content
        (None if none is within budget), with its calibrated constants."""
        s = self.best if family is None else self.bests.get(family)
        if s is None:
            return None
        provenance = {"found_by": "topk-plugin search-placement", "budget_points": self.budget,
                      **self.evaluated[s].to_json(), "dense": self.dense.to_json()}
        if s in self.report:
            provenance["held_out"] = {**self.report[s].to_json(), "dense": self.report_dense.to_json(),
                                      "split": self.holdout}
        constants = dict(self.calibration.get(s, {}))
        if s.op == "stats-norm":
            return PlacementSpec(layers={layer: {"strength": s.strength} for layer in s.layers}, op="stats-norm",
                                 model=self.model, provenance=provenance, stats=constants)
        return PlacementSpec(layers={layer: s.k for layer in s.layers}, op="topk", model=self.model,
                             options={} if s.fill == "zero" else {"fill": s.fill}, provenance=provenance,
                             shift=constants)
