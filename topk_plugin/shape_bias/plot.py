"""The shape-bias figure: per-category and pooled shape bias of several decision makers.

In the style of model-vs-human's shape-bias matrix plot (and the paper's Fig. 5):
one row per category, the fraction of shape decisions on the x axis (texture
decisions on the top axis), one marker colour per model, a vertical line at
each model's pooled value.
"""
from __future__ import annotations

import math
from pathlib import Path

from .categories import CATEGORIES
from .metrics import ShapeBiasResult

__all__ = ["plot_shape_bias", "plot_tradeoff"]

HUMAN_COLOR = "#d62728"


def _save(fig, path: Path) -> list[Path]:
    """``path`` (PNG) and the same figure as PDF beside it; closes the figure."""
    import matplotlib.pyplot as plt  # at plot time (see plot_shape_bias)

    written = [path, path.with_suffix(".pdf")]
    for target in written:
        fig.savefig(target, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return written


def plot_shape_bias(
    results: list[ShapeBiasResult],
    path: str | Path,
    *,
    humans: ShapeBiasResult | None = None,
    title: str = "Shape bias on cue-conflict",
    intervals: list | None = None,
) -> list[Path]:
    """Write ``path`` as PNG and the same figure as PDF beside it; returns both paths.

    ``intervals``: one ``[lo, hi]`` (or None) per result, the pooled shape bias's
    95% interval, drawn as a band around its dashed line and given in the legend.
    """
    if intervals is not None and len(intervals) != len(results):
        raise ValueError(f"{len(intervals)} intervals for {len(results)} results")
    import matplotlib  # at plot time: the library never picks a backend for its importer

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path).with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = list(CATEGORIES)
    fig, ax = plt.subplots(figsize=(6.5, 0.38 * len(rows) + 2.2))
    cmap = plt.get_cmap("viridis")
    bands = list(intervals) if intervals is not None else [None] * len(results)
    entries = ([(humans, HUMAN_COLOR, "D", None)] if humans else []) + [
        (r, cmap(i / max(1, len(results) - 1) * 0.9), "o", band) for i, (r, band) in enumerate(zip(results, bands, strict=True))
    ]
    for offset, (result, color, marker, band) in enumerate(entries):
        ys, xs = [], []
        for y, category in enumerate(rows):
            value = result.per_category.get(category, math.nan)
            if not math.isnan(value):
                ys.append(y + (offset - (len(entries) - 1) / 2) * 0.08)
                xs.append(value)
        label = f"{result.name}: {result.shape_bias:.3f}"
        if band is not None and all(v is not None and math.isfinite(v) for v in band):
            label += f" [{band[0]:.3f}, {band[1]:.3f}]"
            ax.axvspan(band[0], band[1], color=color, alpha=0.12, zorder=1, linewidth=0)
        if result.near_chance:
            label += " (near chance)"
        ax.scatter(xs, ys, color=color, marker=marker, s=28, label=label, zorder=3, edgecolors="white", linewidths=0.4)
        ax.axvline(result.shape_bias, color=color, linestyle="--", linewidth=1.2, zorder=2)
    ax.set_yticks(range(len(rows)), rows)
    ax.invert_yaxis()
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("fraction of 'shape' decisions")
    top = ax.secondary_xaxis("top", functions=(lambda x: 1 - x, lambda x: 1 - x))
    top.set_xlabel("fraction of 'texture' decisions")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title, pad=28, fontsize=11)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=1, fontsize=8, frameon=False)
    fig.tight_layout()
    return _save(fig, path)


# marker style per kind of point in the trade-off plot: circles for Top-K, squares for the
# stats-norm control; green for each family's best, purple for held-out scores
_TRADEOFF_STYLE = {
    "dense": dict(color="black", marker="*", s=140),
    "topk": dict(color="#1f77b4", marker="o", s=34),
    "stats-norm": dict(color="#8c564b", marker="s", s=30),
    "random": dict(color="#ff7f0e", marker="x", s=40),
    "front": dict(color="#1f77b4", marker="o", s=60),
    "best": dict(color="#2ca02c", marker="o", s=150),
    "best stats-norm": dict(color="#2ca02c", marker="s", s=130),
    "held-out": dict(color="#9467bd", marker="D", s=40),
    "held-out stats-norm": dict(edgecolors="#9467bd", facecolors="none", marker="s", s=40),
    "held-out dense": dict(color="#9467bd", marker="*", s=140),
}
_TRADEOFF_LABEL = {"dense": "dense", "topk": "Top-K", "stats-norm": "stats-norm control", "random": "random-K control",
                   "best": "best within budget", "best stats-norm": "best stats-norm within budget",
                   "held-out": "Top-K front and best, held-out images",
                   "held-out stats-norm": "stats-norm front and best, held-out images",
                   "held-out dense": "dense, held-out images"}
_FRONT_STYLE = {"topk": dict(color="#1f77b4", linestyle="-"), "stats-norm": dict(color="#8c564b", linestyle="--")}


def _error_bars(ax, p: dict, color) -> None:
    """95% intervals (``shape_bias_ci``, ``imagenet_top1_ci``) as error bars, when the point has them."""
    y, x = p.get("shape_bias_ci"), p.get("imagenet_top1_ci")
    if not (y and None not in y) and not (x and None not in x):
        return
    yerr = [[p["shape_bias"] - y[0]], [y[1] - p["shape_bias"]]] if y and None not in y else None
    xerr = [[p["imagenet_top1"] - x[0]], [x[1] - p["imagenet_top1"]]] if x and None not in x else None
    ax.errorbar(p["imagenet_top1"], p["shape_bias"], yerr=yerr, xerr=xerr, fmt="none", ecolor=color or "grey",
                elinewidth=0.8, alpha=0.6, zorder=2)


def _draw_tradeoff(ax, points: list[dict], lines: dict, budget_top1: float | None, labels: bool) -> None:
    """The points, front lines and budget of :func:`plot_tradeoff` on one axes (``labels``: annotate them)."""
    seen = set()
    for p in points:
        style = _TRADEOFF_STYLE[p["kind"]]
        label = _TRADEOFF_LABEL.get(p["kind"])
        ax.scatter(p["imagenet_top1"], p["shape_bias"], label=None if p["kind"] in seen else label, zorder=3,
                   alpha=0.5 if p["kind"] in ("topk", "stats-norm") else 0.85, **style)
        seen.add(p["kind"])
        _error_bars(ax, p, style.get("color", style.get("edgecolors")))
        if labels and p.get("label"):
            ax.annotate(p["label"], (p["imagenet_top1"], p["shape_bias"]), fontsize=6, xytext=(3, 3),
                        textcoords="offset points")
    for family, line in lines.items():
        ordered = sorted(line, key=lambda p: p["imagenet_top1"])
        style = _FRONT_STYLE.get(family, dict(color="grey", linestyle=":"))
        label = "Pareto front" if list(lines) == ["topk"] else f"Pareto front, {_TRADEOFF_LABEL.get(family, family)}"
        ax.plot([p["imagenet_top1"] for p in ordered], [p["shape_bias"] for p in ordered], linewidth=1.2, label=label,
                zorder=2, **style)
    if budget_top1 is not None:
        ax.axvline(budget_top1, color="grey", linestyle=":", linewidth=1, label="top-1 budget")
    ax.axhline(0.5, color="grey", linewidth=0.5, alpha=0.5)
    ax.set_xlabel("ImageNet top-1")
    ax.grid(alpha=0.3)


def plot_tradeoff(points: list[dict], path: str | Path, *, title: str = "Shape bias vs recognition",
                  front: list[dict] | None = None, budget_top1: float | None = None,
                  fronts: dict[str, list[dict]] | None = None) -> list[Path]:
    """Shape bias (y) against ImageNet top-1 (x), one marker per setting.

    ``points``: dicts with ``shape_bias``, ``imagenet_top1``, ``kind`` (dense,
    topk, stats-norm, random, best, best stats-norm, held-out, ...), an optional
    ``label`` and optional ``shape_bias_ci`` / ``imagenet_top1_ci`` (drawn as error
    bars); ``front`` (Top-K's) or ``fronts`` (``{family: points}``, one line style
    per family) are drawn as lines; ``budget_top1`` as a vertical line (the lowest
    top-1 allowed). With a budget, a second panel zooms in on the settings within
    10 points of it, where the bests are. PNG and PDF.
    """
    import matplotlib  # at plot time: the library never picks a backend for its importer

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path).with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = dict(fronts or {})
    if front:
        lines.setdefault("topk", front)
    zoom = budget_top1 is not None and bool(points)
    fig, axes = plt.subplots(1, 2 if zoom else 1, figsize=(11.5 if zoom else 6.5, 5.2), squeeze=False)
    ax = axes[0][0]
    _draw_tradeoff(ax, points, lines, budget_top1, labels=not zoom)
    ax.set_ylabel("shape bias (cue-conflict)")
    ax.set_ylim(0, 1)
    if zoom:
        near = axes[0][1]
        _draw_tradeoff(near, points, lines, budget_top1, labels=True)
        top = max(p["imagenet_top1"] for p in points)
        shown = [p["shape_bias"] for p in points if p["imagenet_top1"] >= budget_top1 - 0.1
                 and p["shape_bias"] == p["shape_bias"]]  # not NaN
        near.set_xlim(budget_top1 - 0.1, top + 0.02)
        if shown:
            near.set_ylim(max(0.0, min(shown) - 0.05), min(1.0, max(shown) + 0.05))
        near.set_title("near the budget", fontsize=10)
    fig.suptitle(title, fontsize=11)
    handles, labels = ax.get_legend_handles_labels()
    # below the axes: inside, the legend covers the settings near dense (where the budget keeps the bests)
    fig.legend(handles, labels, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3 if zoom else 2,
               frameon=False)
    fig.tight_layout()
    return _save(fig, path)
