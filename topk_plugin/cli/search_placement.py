"""``topk-plugin search-placement``: where should Top-K go in this model? (shape bias vs top-1)."""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from pathlib import Path

from .._io import atomic_write_json, atomic_write_text, json_safe, staged_outputs
from ..distributed import current
from ..functional import FILLS
from ..search import search_placement
from ..search.evaluate import FAMILIES
from ..search.holdout import holdout_split
from ..shape_bias.datasets import SHAPE_ONLY
from ..shape_bias.imagenet import ImageNetImages, eval_transform
from ..shape_bias.intervals import format_field
from ..shape_bias.locate import found_without_download
from .argtypes import add_evaluation_options, check_fractions, pick_device, positive_int
from .datasets import data_folders, humans_by_dataset, load_stimuli
from .models import load_model
from .preflight import check_layers, dense_base
from .suite_output import SHAPE_ONLY_KEYS, csv_cells, csv_names, shape_only_table

CONTROL_SPEC = "best_stats_norm_placement.json"  # the stats-norm family's best, with --op topk stats-norm
HELP = "search Top-K placements: the Pareto front of shape bias vs ImageNet top-1, and the best within a budget"


def add_parser(sub) -> None:
    p = sub.add_parser("search-placement", help=HELP, description=HELP)
    p.add_argument("--model", required=True, help="timm or torchvision model name (dense base)")
    p.add_argument("--weights", metavar="FILE", help="local state dict of the model (offline)")
    p.add_argument("--data", nargs="+", metavar="[NAME=]DIR",
                   help="dataset folders: the cue-conflict folder, and NAME=DIR (or .../NAME, or a folder holding them) "
                        "for the shape-only datasets (default: $TOPK_PLUGIN_<NAME>, the cache, the package, and for "
                        "cue-conflict a download)")
    p.add_argument("--shape-only", nargs="*", choices=SHAPE_ONLY, metavar="NAME",
                   help="shape-only datasets on which dense, the front and the best are scored after the search "
                        "(accuracy, error consistency with the humans; never used for choosing). Default: every one "
                        "present without a download (edge and silhouette ship with the package; sketch and stylized "
                        "when --data, $TOPK_PLUGIN_<NAME> or the cache has them); none with an empty list")
    p.add_argument("--humans", nargs="+", metavar="CSV_OR_DIR",
                   help="human trials for the shape-only datasets' error consistency (default: the copies shipped "
                        "for edge and silhouette), e.g. model-vs-human's raw-data/")
    p.add_argument("--imagenet", metavar="DIR", required=True,
                   help="ImageNet images named <wnid>_*.jpg or in <wnid>/ folders (e.g. ImageNet's validation set)")
    p.add_argument("--budget", type=float, default=5.0, metavar="POINTS",
                   help="largest top-1 loss (percentage points below dense) allowed for 'best' (default: 5)")
    p.add_argument("--topk", nargs="+", type=float, default=[0.05, 0.1, 0.2], metavar="F", help="K fractions (default: 0.05 0.1 0.2)")
    p.add_argument("--max-layers", type=positive_int, default=2, help="largest number of layers combined (default: 2)")
    p.add_argument("--beam", type=positive_int, default=4, help="best single layers per K that are combined (default: 4)")
    p.add_argument("--fill", nargs="+", choices=FILLS, default=["zero"], metavar="FILL",
                   help="fills to search: zero (the paper), shift (a per-channel constant calibrated on the search's "
                        "ImageNet images), image-mean (the ablation) (default: zero)")
    p.add_argument("--op", nargs="+", choices=FAMILIES, default=["topk"], metavar="OP", dest="ops",
                   help="op families searched side by side over the same layers: topk, stats-norm (the per-image "
                        "channel-statistics control: each image's channel mean and std moved toward dataset constants "
                        "calibrated on the search's ImageNet images) (default: topk)")
    p.add_argument("--strength", nargs="+", type=float, default=[0.1, 0.2, 0.35, 0.5], metavar="A",
                   help="strengths in (0, 1] of the stats-norm control (default: 0.1 0.2 0.35 0.5)")
    p.add_argument("--layers", nargs="+", metavar="NAME", help="candidate layers (default: every step of the sequential trunks)")
    p.add_argument("--no-control", dest="control", action="store_false", help="skip the random-K control")
    p.add_argument("--no-cache", dest="cache", action="store_false",
                   help="run the whole model per setting (the naive search; same numbers, slower)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the random-K control and of the bootstrap intervals (recorded in search.json; default: 0)")
    p.add_argument("--holdout", action=argparse.BooleanOptionalAction, default=True,
                   help="choose on half of the images and report the front and best on the other half, split by "
                        "shape source image and ImageNet class (default: on; --no-holdout searches and reports "
                        "on all images, which overstates the best)")
    p.add_argument("--split-seed", type=int, default=0, metavar="N", help="seed of the held-out split (default: 0)")
    p.add_argument("--resume", action="store_true",
                   help="reuse the phases already in DIR/search.checkpoint.json (written after each phase)")
    add_evaluation_options(p, "placement-search")
    p.set_defaults(run=run)


def _name(row: dict) -> str:
    if row.get("op") == "stats-norm":
        return f"stats-norm a={row['strength']:g} @ {'+'.join(row['layers'])}"
    fill = row.get("fill", "zero")
    return f"{row['topk']:g} @ {'+'.join(row['layers'])}" + ("" if fill == "zero" else f" fill={fill}")


def _decomposition(rows: list) -> list[str]:
    """The best's layers and K with each fill, on the held-out images."""
    if not rows:
        return []
    lines = ["", "what Top-K removes, at the best's layers and K (held-out images; 'vs zero': paired difference):",
             f"{'fill':<12} {'shape_bias':>21} {'vs dense':>22} {'vs zero':>22} {'top-1':>21} {'vs dense':>22} "
             f"{'vs zero':>22}"]
    for row in rows:
        zero = row.get("vs_zero", {})
        lines.append(f"{row['fill']:<12} {format_field(row, 'shape_bias'):>21} {format_field(row, 'delta_shape_bias'):>22}"
                     f" {format_field(zero, 'delta_shape_bias'):>22} {format_field(row, 'imagenet_top1'):>21}"
                     f" {format_field(row, 'delta_top1'):>22} {format_field(zero, 'delta_top1'):>22}")
    return lines


def _best_line(summary: dict, best: dict | None, what: str, held: bool, side: str) -> str:
    if best is None:
        return f"best {what}within {summary['budget']:g} points: none"
    where = best.get("report") if held else best
    return (f"best {what}within {summary['budget']:g} points (chosen on the {side}): {_name(best)}; "
            + ("held-out: " if held else "")
            + f"shape bias {format_field(where, 'shape_bias')}, {format_field(where, 'delta_shape_bias')} vs dense; "
              f"top-1 {format_field(where, 'imagenet_top1')}, {format_field(where, 'delta_top1')} vs dense")


def _comparison(summary: dict) -> list[str]:
    """Best stats-norm minus best Top-K, paired on the same images."""
    comparison = summary.get("comparison")
    if "families" not in summary or "stats-norm" not in summary["families"] or "topk" not in summary["families"]:
        return []
    if comparison is None:
        return ["", "best stats-norm minus best Top-K: - (a family has no setting within the budget)"]
    lines = ["", "best stats-norm minus best Top-K (paired on the same images):"]
    for key, label in (("search", "search images"), ("held_out", "held-out images")):
        if key in comparison:
            d = comparison[key]
            lines.append(f"  {label + ':':<17} shape bias {format_field(d, 'delta_shape_bias')}, "
                         f"top-1 {format_field(d, 'delta_top1')}")
    return lines


def _table(summary: dict, shape_only_rows: list[dict] = ()) -> str:
    held = summary.get("holdout") is not None
    name_w = 44

    def line(name, row):
        text = f"{name:<{name_w}} {format_field(row, 'shape_bias'):>21} {format_field(row, 'imagenet_top1'):>21}"
        if held:
            rep = row.get("report")
            text += (f" | {format_field(rep, 'shape_bias'):>21} {format_field(rep, 'delta_shape_bias'):>22}"
                     f" {format_field(rep, 'imagenet_top1'):>21} {format_field(rep, 'delta_top1'):>22}")
        else:
            text += f" {format_field(row, 'delta_shape_bias'):>22} {format_field(row, 'delta_top1'):>22}"
        control = row.get("control")
        return text + (f" {control['shape_bias']:>8.3f} {control['imagenet_top1']:>9.3f}" if control
                       else f" {'-':>8} {'-':>9}")

    side = "search images" if held else "all images"
    head = f"{'setting':<{name_w}} {'shape_bias':>21} {'top-1':>21}"
    head += (f" | {'held-out shape_bias':>21} {'vs dense':>22} {'held-out top-1':>21} {'vs dense':>22}" if held
             else f" {'sb vs dense':>22} {'top-1 vs dense':>22}")
    lines = [f"({side}{'; right of |: held-out images' if held else ''}; [95% CI] bootstrap over images; "
             "'vs dense': paired difference)", head + f" {'rand.sb':>8} {'rand.top1':>9}",
             line("dense", summary["dense"])]
    families = summary.get("families")
    if families is None:
        lines += [line(_name(row), row) for row in summary["front"]]
        lines += ["", _best_line(summary, summary["best"], "", held, side)]
    else:
        for family, part in families.items():
            lines.append(f"-- front: {'Top-K' if family == 'topk' else 'stats-norm control'}")
            lines += [line(_name(row), row) for row in part["front"]]
        lines.append("")
        for family, part in families.items():
            lines.append(_best_line(summary, part["best"], "Top-K " if family == "topk" else "stats-norm ", held, side))
        lines += _comparison(summary)
    lines += _decomposition(summary.get("decomposition", []))
    if shape_only_rows:
        humans = [v["humans"] for v in summary.get("shape_only", {}).values() if v.get("humans")]
        lines += ["", "shape-only datasets: dense, the front and the best (all images; never used for choosing):",
                  shape_only_table(shape_only_rows, humans, name_key="setting", title="setting", width=40)]
    return "\n".join(lines)


_CSV_SCORES = ["shape_bias", "shape_bias_ci", "delta_shape_bias", "delta_shape_bias_ci", "shape_or_texture",
               "shape_or_texture_ci", "accuracy", "imagenet_top1", "imagenet_top1_ci", "delta_top1", "delta_top1_ci",
               "near_chance"]


def _csv_cells(row: dict | None) -> list:
    cells = []
    for key in _CSV_SCORES:
        value = None if row is None else row.get(key)
        cells += list(value) if key.endswith("_ci") and value else [None, None] if key.endswith("_ci") else [value]
    return cells


def _csv(summary: dict) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    names = [n for key in _CSV_SCORES for n in ((f"{key}_lo", f"{key}_hi") if key.endswith("_ci") else (key,))]
    datasets = list(summary.get("shape_only", {}))
    shape_only = [n for d in datasets for n in csv_names(SHAPE_ONLY_KEYS, prefix=f"{d}_")]
    writer.writerow(["op", "fill", "topk", "strength", "layers", *names, *(f"held_out_{n}" for n in names), *shape_only])
    rows = [summary["dense"]] + summary["evaluated"] + [r["control"] | {"layers": r["layers"], "topk": r["topk"]}
                                                       for r in summary["evaluated"] if "control" in r]
    for r in rows:
        stats_norm = r["op"] == "stats-norm"  # a strength, no K or fill
        writer.writerow([r["op"], None if stats_norm else r.get("fill", "zero"), None if stats_norm else r.get("topk", 0),
                         r.get("strength"), "+".join(r.get("layers", [])), *_csv_cells(r), *_csv_cells(r.get("report")),
                         *(c for d in datasets for c in csv_cells((r.get("shape_only") or {}).get(d), SHAPE_ONLY_KEYS))])
    return buf.getvalue()


def _shape_only(args, folders: dict) -> dict:
    """``{name: folder or None}`` of the shape-only datasets to report: those named, else those present
    without a download (given by --data, or found in the environment, the cache or the package)."""
    if args.shape_only is not None:
        return {name: folders.get(name) for name in args.shape_only}
    return {name: folders.get(name) for name in SHAPE_ONLY
            if name in folders or found_without_download(name) is not None}


def run(args: argparse.Namespace) -> int:
    check_fractions(args.topk, dense_zero=False)
    for a in args.strength:
        if not 0 < a <= 1:
            raise ValueError(f"--strength {a:g} must lie in (0, 1] (1 replaces each image's channel statistics by the "
                             "dataset's)")
    if not math.isfinite(args.budget) or args.budget < 0:
        raise ValueError(f"--budget {args.budget:g} must be a number >= 0 (percentage points of top-1 below dense; "
                         "100 allows any loss)")
    dense_base(args.model, "search-placement")
    out = Path(args.out)
    device = pick_device(args.device)
    model = load_model(args.model, args.weights).to(device).eval()
    check_layers(model, args.layers, patterns=False)
    folders = data_folders(args.data, ["cue-conflict", *(args.shape_only or SHAPE_ONLY)], primary="cue-conflict")
    # resolved: a resume from the same folders matches however they are spelled (the checkpoint records them)
    cue = load_stimuli("cue-conflict", folders.get("cue-conflict"), resolve=True)
    shape_only = {name: load_stimuli(name, folder, resolve=True) for name, folder in _shape_only(args, folders).items()}
    humans, _ = humans_by_dataset(list(shape_only), args.humans)
    imagenet = ImageNetImages(Path(args.imagenet).resolve(), eval_transform(model),
                              limit_per_class=args.limit_per_class)
    report = holdout = None
    if args.holdout:
        (cue, imagenet), report = holdout_split(cue, imagenet, seed=args.split_seed)
        holdout = {"seed": args.split_seed, "by": "cue-conflict: shape source image; ImageNet: within each class",
                   "search_images": [len(cue), len(imagenet)], "report_images": [len(report[0]), len(report[1])]}
    result = search_placement(
        model, cue, imagenet, name=args.model.split(":", 1)[-1], topks=args.topk, candidates=args.layers,
        max_layers=args.max_layers, beam=args.beam, budget=args.budget, control=args.control, cache=args.cache,
        seed=args.seed, batch_size=args.batch_size, workers=args.workers, device=device,
        progress=not args.json or sys.stderr.isatty(), checkpoint=out / "search.checkpoint.json", resume=args.resume,
        report=report, holdout=holdout, fills=args.fill, ops=args.ops, strengths=args.strength,
        shape_only=shape_only, humans=humans,
    )
    if not current().main:
        return 0  # under torchrun every process has the result; rank 0 writes and prints it
    summary = json_safe(result.to_json())
    spec = result.best_spec()
    # the control's best beside Top-K's (when both were searched), so users can run it too
    control_spec = result.best_spec("stats-norm") if "topk" in args.ops and "stats-norm" in args.ops else None
    with staged_outputs(out) as stage:  # every result file at once, or none; the checkpoint stays for --resume
        atomic_write_json(stage / "search.json", summary)
        atomic_write_text(stage / "evaluated.csv", _csv(summary))
        plots = result.plot(stage / "front.png")
        if shape_only:
            plots += result.plot_shape_only(stage / "shape_only.png")
        if spec is not None:
            spec.save(stage / "best_placement.json")
        if control_spec is not None:
            control_spec.save(stage / CONTROL_SPEC)
    summary["plots"] = [str(out / Path(p).name) for p in plots]
    summary["placement_spec"] = None if spec is None else str(out / "best_placement.json")
    if control_spec is not None:
        summary["control_placement_spec"] = str(out / CONTROL_SPEC)
    summary["outputs"] = {"json": str(out / "search.json"), "csv": str(out / "evaluated.csv")}
    if args.json:
        print(json.dumps(summary))
    else:
        print(_table(summary, json_safe(result.shape_only_rows())))
        print(f"\nwrote {out}/ (search.json, evaluated.csv, front.png/.pdf" + (", shape_only.png/.pdf" if shape_only else "")
              + (", best_placement.json" if spec else "") + (f", {CONTROL_SPEC}" if control_spec else "") + ")")
        if spec:
            weights = f", weights_path={args.weights!r}" if args.weights else ""
            print(f"use it: topk_plugin.create_model({args.model!r}{weights}, "
                  f"placement={str(out / 'best_placement.json')!r})")
    return 0
