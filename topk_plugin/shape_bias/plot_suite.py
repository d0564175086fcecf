"""The shape-only figure: accuracy and error consistency per dataset, each setting beside the humans.

In the style of model-vs-human's benchmark plots: one group per dataset, one
marker per decision maker with its 95% interval, the humans as red diamonds,
chance as a dotted line (1/16 for accuracy; 0 for error consistency, the kappa
of observers whose errors are independent). The humans' error consistency is
their mean between-subject kappa: the level a model that errs like people
would reach.
"""
from __future__ import annotations

import math
from pathlib import Path

from .plot import HUMAN_COLOR, _save

__all__ = ["plot_shape_only"]


def _valid(value) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def _panel(ax, datasets, makers, key: str, chance: float, ylabel: str) -> None:
    width = 0.8 / max(1, len(makers))
    for j, (label, color, marker, by_dataset) in enumerate(makers):
        xs, ys, lo, hi = [], [], [], []
        for i, dataset in enumerate(datasets):
            row = by_dataset.get(dataset)
            if row is None or not _valid(row.get(key)):
                continue
            x = i - 0.4 + width * (j + 0.5)
            ci = row.get(f"{key}_ci") or [None, None]
            xs.append(x)
            ys.append(row[key])
            lo.append(row[key] - ci[0] if _valid(ci[0]) else 0.0)
            hi.append(ci[1] - row[key] if _valid(ci[1]) else 0.0)
        if xs:
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt=marker, color=color, markersize=7, capsize=2, elinewidth=1,
                        label=label, markeredgecolor="white", markeredgewidth=0.5, zorder=3)
    ax.axhline(chance, color="grey", linestyle=":", linewidth=1, zorder=1)
    ax.set_xticks(range(len(datasets)), datasets)
    ax.set_xlim(-0.5, len(datasets) - 0.5)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)


def plot_shape_only(rows: list[dict], humans: list[dict], path: str | Path, *, title: str = "Shape-only datasets",
                    label_key: str = "name") -> list[Path]:
    """PNG (``path``) and PDF: left accuracy, right error consistency, per dataset.

    ``rows``: one dict per (setting, dataset) with ``dataset``, ``accuracy``,
    ``error_consistency`` and their ``_ci``, labelled by ``row[label_key]``;
    ``humans``: the humans' row per dataset (:func:`.shape_only_scores.human_reference`).
    """
    import matplotlib  # at plot time: the library never picks a backend for its importer

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path).with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets = list(dict.fromkeys([r["dataset"] for r in humans] + [r["dataset"] for r in rows]))
    labels = list(dict.fromkeys(r[label_key] for r in rows))
    cmap = plt.get_cmap("viridis")
    makers = [("humans", HUMAN_COLOR, "D", {r["dataset"]: r for r in humans})] if humans else []
    for i, label in enumerate(labels):
        color = cmap(i / max(1, len(labels) - 1) * 0.9)
        makers.append((label, color, "o", {r["dataset"]: r for r in rows if r[label_key] == label}))
    fig, (left, right) = plt.subplots(1, 2, figsize=(max(7.0, 2.2 * len(datasets) + 3), 4.4))
    _panel(left, datasets, makers, "accuracy", 1 / 16, "16-class accuracy")
    left.set_ylim(0, 1)
    _panel(right, datasets, makers, "error_consistency", 0.0, "error consistency with humans (kappa)")
    right.set_ylim(-0.2, 1)
    left.set_title("accuracy (dotted: chance)", fontsize=9)
    right.set_title("error consistency (humans: between subjects)", fontsize=9)
    fig.suptitle(title, fontsize=11)
    handles, names = left.get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(4, len(names)), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, -0.02 - 0.035 * math.ceil(len(names) / 4)))
    fig.tight_layout()
    return _save(fig, path)
