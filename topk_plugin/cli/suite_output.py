"""Tables and CSV of the shape-only datasets' scores, shared by ``shape-bias`` and ``search-placement``."""
from __future__ import annotations

import csv
import io

from ..shape_bias.intervals import format_field

__all__ = ["SHAPE_ONLY_KEYS", "CUE_KEYS", "TOP1_KEYS", "csv_names", "csv_cells", "shape_only_table", "results_csv"]

SHAPE_ONLY_KEYS = ["accuracy", "accuracy_ci", "delta_accuracy", "delta_accuracy_ci", "error_consistency",
                   "error_consistency_ci", "delta_error_consistency", "delta_error_consistency_ci"]
CUE_KEYS = ["shape_bias", "shape_bias_ci", "delta_shape_bias", "delta_shape_bias_ci", "shape_or_texture",
            "shape_or_texture_ci"]
TOP1_KEYS = ["imagenet_top1", "imagenet_top1_ci", "delta_top1", "delta_top1_ci"]


def csv_names(keys: list[str], prefix: str = "") -> list[str]:
    """Column names of ``keys``: an interval ``x_ci`` becomes ``x_lo`` and ``x_hi``."""
    return [f"{prefix}{n}" for key in keys
            for n in ((f"{key[:-3]}_lo", f"{key[:-3]}_hi") if key.endswith("_ci") else (key,))]


def csv_cells(row: dict | None, keys: list[str]) -> list:
    cells = []
    for key in keys:
        value = None if row is None else row.get(key)
        if key.endswith("_ci"):
            cells += list(value) if value else [None, None]
        else:
            cells.append(value)
    return cells


def shape_only_table(rows: list[dict], humans: list[dict], *, name_key: str = "name", title: str = "name",
                     width: int = 32) -> str:
    """One line per (setting, dataset) of the shape-only datasets, the humans first in each dataset.

    ``width``: the least width of the name column; it grows to the longest name so the columns line up."""
    width = max([width, *(len(str(r[name_key])) for r in rows)])
    head = (f"{'dataset':<11} {title:<{width}} {'accuracy [95% CI]':>22} "
            f"{'vs dense [95% CI]':>24} {'error consistency [95% CI]':>27} {'vs dense [95% CI]':>24}")
    lines = [head]
    datasets = list(dict.fromkeys([h["dataset"] for h in humans] + [r["dataset"] for r in rows]))
    for dataset in datasets:
        for h in [h for h in humans if h["dataset"] == dataset]:
            who = f"humans ({h['n_subjects']} subjects)"
            lines.append(f"{dataset:<11} {who:<{width}} {format_field(h, 'accuracy'):>22} {'':>24} "
                         f"{format_field(h, 'error_consistency'):>27} {'':>24}")
        for r in [r for r in rows if r["dataset"] == dataset]:
            lines.append(f"{dataset:<11} {str(r[name_key]):<{width}} {format_field(r, 'accuracy'):>22} "
                         f"{format_field(r, 'delta_accuracy'):>24} {format_field(r, 'error_consistency'):>27} "
                         f"{format_field(r, 'delta_error_consistency'):>24}")
    lines.append("accuracy: 16-class (chance 0.0625); error consistency: mean Cohen's kappa with each human subject "
                 "(humans: between subjects; 0 = independent errors); [95% CI] bootstrap over images; 'vs dense': "
                 "paired difference on the same images")
    return "\n".join(lines)


def results_csv(rows: list[dict], humans: list[dict]) -> str:
    """Every (setting, dataset) row and the humans' rows as one CSV."""
    keys = CUE_KEYS + SHAPE_ONLY_KEYS + TOP1_KEYS
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["dataset", "name", "op", "topk", "layers", *csv_names(keys), "n_images", "csv"])
    for r in humans:
        writer.writerow([r["dataset"], "humans", "humans", None, None, *csv_cells(r, keys), r.get("n_images"), None])
    for r in rows:
        writer.writerow([r["dataset"], r["name"], r.get("op"), r.get("topk"), "+".join(r.get("layers") or []),
                         *csv_cells(r, keys), r.get("n_images"), r.get("csv")])
    return buf.getvalue()
