"""From the claim run's rows to numbers with intervals, a verdict and figures.

Per backbone, analysis and K: the mean of each score per condition with its
95% bootstrap interval over images, and the paired difference
"Top-K minus non-Top-K" (``topk - non_topk`` for reconstruction,
``topk_only - without_topk`` for synthesis) on the same images.

The verdict reads the reconstruction differences, as the claim is stated:

* *structure*: Top-K reconstructions keep more of the target's layout, i.e.
  the difference of ``ssim`` and of ``edge_correlation`` is above 0;
* *texture*: non-Top-K reconstructions keep more texture and colour, i.e.
  the difference of ``gram_distance`` and of ``color_histogram_distance``
  (distances: lower = closer) is above 0.

A part ``holds`` when both of its scores' intervals lie on the claimed side of
0, is ``contradicted`` when both lie on the other side, and is ``mixed``
otherwise (an interval containing 0, or the two scores disagreeing).
"""
from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from .._io import atomic_write_bytes, atomic_write_json, atomic_write_text
from ..stats import Interval, bootstrap, paired_difference
from .claim import ANALYSES, SCORES, example_path

__all__ = ["not_converged", "summarize", "summary_json", "summary_csv", "summary_markdown", "verdict_sentences", "plot_differences",
           "plot_examples", "write_report", "CLAIMS"]

# claim part -> scores whose Top-K minus non-Top-K difference should be > 0
CLAIMS = {"structure": ("ssim", "edge_correlation"), "texture": ("gram_distance", "color_histogram_distance")}


def _by_image(rows, backbone, analysis, cond, k) -> dict[str, dict]:
    return {r["image"]: r for r in rows if r["backbone"] == backbone and r["analysis"] == analysis
            and r["condition"] == cond and r["k"] == k}


def _part_verdict(diffs: dict[str, Interval], scores) -> str:
    signs = {diffs[s].excludes_zero() for s in scores}
    return "holds" if signs == {1} else "contradicted" if signs == {-1} else "mixed"


def _optimisation(rows: list[dict]) -> dict:
    """How a condition's optimisations went: how many did not converge, evaluations used (median, range)."""
    evals = [r["evals"] for r in rows]
    return {"not_converged": sum(not r["converged"] for r in rows), "of": len(rows),
            "evals_median": float(np.median(evals)), "evals_min": min(evals), "evals_max": max(evals)}


def not_converged(rows: list[dict]) -> tuple[int, int]:
    """``(optimisations that stopped at the cap, all optimisations)`` of a run."""
    return sum(not r["converged"] for r in rows), len(rows)


def summarize(rows: list[dict], *, seed: int = 0) -> list[dict]:
    """One entry per (backbone, analysis, K): conditions' means, paired differences, verdict."""
    entries = []
    backbones = list(dict.fromkeys(r["backbone"] for r in rows))
    ks = sorted({r["k"] for r in rows if r["k"] is not None})
    for backbone in backbones:
        for analysis, (free, topk, rest) in ANALYSES.items():
            for k in ks:
                per_cond = {free: _by_image(rows, backbone, analysis, free, None),
                            topk: _by_image(rows, backbone, analysis, topk, k),
                            rest: _by_image(rows, backbone, analysis, rest, k)}
                images = sorted(set.intersection(*(set(v) for v in per_cond.values())))
                if not images:
                    continue
                values = {c: {s: np.array([per_cond[c][i][s] for i in images]) for s in SCORES} for c in per_cond}
                conditions = {c: {s: bootstrap(values[c][s], seed=seed) for s in SCORES} for c in per_cond}
                diffs = {s: paired_difference(values[topk][s], values[rest][s], seed=seed) for s in SCORES}
                optimisation = {c: _optimisation([per_cond[c][i] for i in images]) for c in per_cond}
                entry = {"backbone": backbone, "analysis": analysis, "k": k, "images": len(images),
                         "conditions": conditions, "difference": diffs, "optimisation": optimisation,
                         "difference_of": f"{topk} - {rest}"}
                if analysis == "reconstruct":
                    entry["verdict"] = {part: _part_verdict(diffs, scores) for part, scores in CLAIMS.items()}
                entries.append(entry)
    return entries


def _interval_json(iv: Interval) -> dict:
    return {"mean": iv.value, "ci": iv.ci}


def summary_json(entries: list[dict]) -> list[dict]:
    return [{
        **{key: e[key] for key in ("backbone", "analysis", "k", "images", "difference_of")},
        "conditions": {c: {s: _interval_json(iv) for s, iv in sc.items()} for c, sc in e["conditions"].items()},
        "difference": {s: _interval_json(iv) for s, iv in e["difference"].items()},
        "optimisation": e["optimisation"],
        **({"verdict": e["verdict"]} if "verdict" in e else {}),
    } for e in entries]


def summary_csv(entries: list[dict]) -> str:
    """Flat table: one line per (backbone, analysis, K, condition or difference, score)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["backbone", "analysis", "k", "what", "score", "mean", "ci_lo", "ci_hi", "images"])
    for e in entries:
        items = [(c, sc) for c, sc in e["conditions"].items()] + [(f"difference {e['difference_of']}", e["difference"])]
        for what, scores in items:
            for s, iv in scores.items():
                w.writerow([e["backbone"], e["analysis"], e["k"], what, s, f"{iv.value:.6g}", f"{iv.lo:.6g}",
                            f"{iv.hi:.6g}", e["images"]])
    return buf.getvalue()


_SHORT = {"ssim": "SSIM ↑", "edge_correlation": "edge corr ↑", "gram_distance": "Gram dist ↓",
          "color_histogram_distance": "colour dist ↓"}


def summary_markdown(entries: list[dict]) -> str:
    """Markdown tables (one per backbone and analysis) for README / BENCHMARKS.md."""
    out = []
    groups = defaultdict(list)
    for e in entries:
        groups[(e["backbone"], e["analysis"])].append(e)
    for (backbone, analysis), group in groups.items():
        out.append(f"**{backbone}, {analysis}** ({group[0]['images']} images; mean [95% CI])\n")
        out.append("| K | condition | " + " | ".join(_SHORT[s] for s in SCORES) + " | evals (median) | not converged |")
        out.append("|---|---|" + "---|" * (len(SCORES) + 2))
        for e in group:
            for c, sc in e["conditions"].items():
                o = e["optimisation"][c]
                out.append(f"| {e['k']:g} | {c} | " + " | ".join(sc[s].format() for s in SCORES)
                           + f" | {o['evals_median']:.0f} | {o['not_converged']} of {o['of']} |")
            out.append(f"| {e['k']:g} | **{e['difference_of']}** | "
                       + " | ".join(f"**{e['difference'][s].format()}**" for s in SCORES) + " | | |")
        out.append("")
    return "\n".join(out)


def verdict_sentences(entries: list[dict]) -> list[str]:
    """One line per backbone and K: does each part of the claim hold, with the numbers."""
    lines = []
    for e in entries:
        if "verdict" not in e:
            continue
        parts = []
        for part, scores in CLAIMS.items():
            nums = ", ".join(f"{s} {e['difference'][s].format()}" for s in scores)
            parts.append(f"{part} {e['verdict'][part]} ({nums})")
        lines.append(f"{e['backbone']} K={e['k']:g}: " + "; ".join(parts))
    return lines


def plot_differences(entries: list[dict], path) -> Path:
    """Paired differences (Top-K minus non-Top-K) per score vs K, with their intervals."""
    import matplotlib  # at plot time: the library never picks a backend for its importer

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backbones = list(dict.fromkeys(e["backbone"] for e in entries))
    analyses = list(ANALYSES)
    fig, axes = plt.subplots(len(analyses), len(SCORES), figsize=(3.2 * len(SCORES), 2.8 * len(analyses)),
                             squeeze=False)
    for r, analysis in enumerate(analyses):
        for c, score in enumerate(SCORES):
            ax = axes[r][c]
            for j, backbone in enumerate(backbones):
                es = [e for e in entries if e["backbone"] == backbone and e["analysis"] == analysis]
                if not es:
                    continue
                x = np.arange(len(es)) + (j - (len(backbones) - 1) / 2) * 0.15
                iv = [e["difference"][score] for e in es]
                ax.errorbar(x, [i.value for i in iv], yerr=[[i.value - i.lo for i in iv], [i.hi - i.value for i in iv]],
                            fmt="o", capsize=3, label=backbone)
                ax.set_xticks(np.arange(len(es)), [f"{e['k']:g}" for e in es])
            ax.axhline(0, color="grey", lw=0.8)
            ax.set_title(f"{analysis}: {_SHORT[score]}", fontsize=9)
            ax.set_xlabel("K")
            if c == 0:
                ax.set_ylabel("Top-K minus non-Top-K")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


_COLUMN_TITLES = {
    ("reconstruct", "identity"): "reconstruction\nfrom all responses",
    ("reconstruct", "topk"): "reconstruction\nfrom Top-K only",
    ("reconstruct", "non_topk"): "reconstruction\nfrom non-Top-K only",
    ("texture-synthesis", "all"): "texture synthesis\nall responses",
    ("texture-synthesis", "topk_only"): "texture synthesis\nTop-K only",
    ("texture-synthesis", "without_topk"): "texture synthesis\nwithout Top-K",
}


def plot_examples(out, backbones, images, k, path) -> Path:
    """The paper's Figs. 2-3 side by side: one row per (image, backbone); the target, the three
    reconstructions, the three syntheses, from the saved PNGs at their own size (1 px per px)."""
    fig = examples_figure(out, backbones, images, k)
    return _save(fig, path, dpi=fig.dpi)


def examples_figure(out, backbones, images, k):
    """The matplotlib figure :func:`plot_examples` saves."""
    import matplotlib  # at plot time: the library never picks a backend for its importer

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    cols = [("target", None, None)] + [(a, c, None if i == 0 else k) for a, conds in ANALYSES.items()
                                       for i, c in enumerate(conds)]
    rows = [(im, b) for im in images for b in backbones]
    pictures, px = {}, 96
    for r, (im, b) in enumerate(rows):
        for c, (analysis, cond, kk) in enumerate(cols):
            p = (out / "examples" / b / im / "target.png" if analysis == "target"
                 else example_path(out, b, im, analysis, cond, kk))
            if p.is_file():
                with Image.open(p) as pic:
                    pictures[r, c] = np.asarray(pic.convert("RGB"))
                px = max(px, pictures[r, c].shape[1])
    dpi = 100
    cell = px / dpi
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(cell * len(cols) + 0.6, (cell + 0.1) * len(rows) + 0.9),
                             squeeze=False, dpi=dpi)
    for r, (im, b) in enumerate(rows):
        for c, (analysis, cond, _) in enumerate(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if (r, c) in pictures:
                ax.imshow(pictures[r, c], interpolation="nearest")
            if r == 0:
                ax.set_title("target" if analysis == "target" else _COLUMN_TITLES.get((analysis, cond), cond),
                             fontsize=8)
            if c == 0:
                ax.set_ylabel(f"{im}\n{b}", fontsize=8)
    fig.suptitle(f"K = {k:g} of the positions for the Top-K conditions", fontsize=9)
    # tight_layout ignores the suptitle: keep a fixed 0.3 in strip for it, or big cells pull the titles under it
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight()))
    return fig


def _save(fig, path, dpi: int = 110) -> Path:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def write_report(rows: list[dict], out, *, examples=(), example_k=None, seed: int = 0) -> dict:
    """``summary.json``, ``summary.csv``, ``scores.csv``, ``summary.md`` and the two figures; returns paths."""
    out = Path(out)
    entries = summarize(rows, seed=seed)
    unconverged, total = not_converged(rows)
    note = f"{unconverged} of {total} optimisations did not converge (stopped at the cap)"
    paths = {
        "summary_json": atomic_write_json(out / "summary.json", {"entries": summary_json(entries),
                                                                 "verdict": verdict_sentences(entries),
                                                                 "not_converged": unconverged, "optimisations": total}),
        "summary_csv": atomic_write_text(out / "summary.csv", summary_csv(entries)),
        "scores_csv": atomic_write_text(out / "scores.csv", _rows_csv(rows)),
        "summary_md": atomic_write_text(out / "summary.md", summary_markdown(entries) + "\n"
                                        + "\n".join(f"- {s}" for s in verdict_sentences(entries))
                                        + f"\n- {note}\n"),
    }
    if entries:
        paths["differences_png"] = plot_differences(entries, out / "claim_differences.png")
    if examples:
        backbones = list(dict.fromkeys(r["backbone"] for r in rows))
        ks = sorted({r["k"] for r in rows if r["k"] is not None})
        k = example_k if example_k is not None else ks[len(ks) // 2]
        paths["examples_png"] = plot_examples(out, backbones, list(examples), k, out / "claim_examples.png")
    return {"entries": entries, "paths": {k: str(v) for k, v in paths.items()}}


def _rows_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return buf.getvalue()
