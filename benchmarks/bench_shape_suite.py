"""Does Top-K make networks recognise shape? SqueezeNet 1.1 and Lite0 on cue-conflict, edge and silhouette.

    python benchmarks/bench_shape_suite.py --shared ../shared --out shape-suite/ [--check]

1. Builds the placement specs of the held-out searches' bests (README, "What Top-K removes"):
   SqueezeNet 1.1 20% @ features.7+features.10 (zero-fill search) and 20% @ features.10+features.12
   fill=shift (zero+shift search); Lite0 20% @ blocks.6.0 (the best of both searches) and its shift
   variant. A shift is calibrated as the search calibrates it: ``calibrate_settings`` on the search
   half's ImageNet images (``holdout_split``, seed 0), batch 32. ``--check`` scores each shift spec on
   the held-out half and prints it beside the search's numbers (SqueezeNet: 0.41325 / 0.536).
2. Runs, timed, as a user would, for each model:
   ``topk-plugin shape-bias --model M --datasets cue-conflict edge silhouette --data ../shared/data
   --topk 0 0.1 0.2 --placement best-zero=... best-shift=...`` (dense, the registry's Top-K 10% and 20%,
   the two bests), one command per model, and prints the wall time, the CPU time of the processes, the
   load average before and after, and a markdown table of the results. Not a test.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from topk_plugin.kernel.cpu import cpu_model, vector_isa

MODELS = {
    "tv:squeezenet1_1": {"weights": "weights/squeezenet1_1_imagenet_torchvision_norm.pth",
                         "best-zero": (("features.7", "features.10"), "zero"),
                         "best-shift": (("features.10", "features.12"), "shift")},
    "tf_efficientnet_lite0": {"weights": None,
                              "best-zero": (("blocks.6.0",), "zero"),
                              "best-shift": (("blocks.6.0",), "shift")},
}
K = 0.2  # every best is at K 20%
HELD_OUT = {("tv:squeezenet1_1", "best-shift"): (0.41325, 0.536)}  # BENCHMARKS.md, issue 14 parts 3-4


def build_specs(model_name: str, shared: Path, out: Path, check: bool) -> dict[str, Path]:
    """The two best specs of ``model_name`` in ``out``; the shift layers calibrated as the search does."""
    from topk_plugin.cli.models import load_model
    from topk_plugin.placement_spec import PlacementSpec
    from topk_plugin.search.calibration import calibrate_settings
    from topk_plugin.search.evaluate import Setting
    from topk_plugin.search.holdout import holdout_split
    from topk_plugin.search.search import _Images
    from topk_plugin.shape_bias.batches import inference, model_normalization
    from topk_plugin.shape_bias.dataset import CueConflictDataset
    from topk_plugin.shape_bias.imagenet import ImageNetImages, eval_transform

    config = MODELS[model_name]
    weights = None if config["weights"] is None else str(shared / config["weights"])
    model = load_model(model_name, weights).eval()
    cue = CueConflictDataset(shared / "data" / "cue-conflict")
    imagenet = ImageNetImages(shared / "data" / "imagenet-sample", eval_transform(model))
    (_, search_imagenet), (report_cue, report_imagenet) = holdout_split(cue, imagenet, seed=0)
    mean, std = model_normalization(model)
    paths = {}
    for label in ("best-zero", "best-shift"):
        layers, fill = config[label]
        setting = Setting(layers, K, "topk", fill)
        shift = {}
        if fill == "shift":
            images = _Images(search_imagenet, dict(batch_size=32, workers=2, device=torch.device("cpu"), mean=mean,
                                                   std=std, dtype=torch.float32))
            with inference(model):
                shift = calibrate_settings(model, [setting], images)[setting]
        spec = PlacementSpec(layers={layer: K for layer in layers}, op="topk", model=model_name.split(":")[-1],
                             options={} if fill == "zero" else {"fill": fill}, shift=shift,
                             provenance={"found_by": "topk-plugin search-placement (held out, split seed 0), "
                                                     "rebuilt by benchmarks/bench_shape_suite.py"})
        paths[label] = spec.save(out / f"{model_name.split(':')[-1]}_{label}.json")
        if check and fill == "shift":
            _check(model, spec, report_cue, report_imagenet, HELD_OUT.get((model_name, label)))
    return paths


def _check(model, spec, cue, imagenet, expected) -> None:
    import topk_plugin
    from topk_plugin.shape_bias.evaluate import evaluate_model
    from topk_plugin.shape_bias.imagenet import evaluate_imagenet

    with topk_plugin.sparsified(model, spec):
        sb = evaluate_model(model, cue, progress=False).result.shape_bias
        top1 = evaluate_imagenet(model, imagenet, progress=False).top1
    print(f"  held-out check {sorted(spec.layers)} fill=shift: shape bias {sb:.5f}, top-1 {top1:.3f}"
          + (f" (the search: {expected[0]:.5f} / {expected[1]:.3f})" if expected else ""), flush=True)


def run_suite(model_name: str, specs: dict[str, Path], shared: Path, out: Path) -> tuple[float, float, dict]:
    """(wall seconds, CPU seconds of the child, summary) of one ``topk-plugin shape-bias`` run."""
    config = MODELS[model_name]
    args = ["shape-bias", "--model", model_name, "--datasets", "cue-conflict", "edge", "silhouette",
            "--data", str(shared / "data"), "--topk", "0", "0.1", "0.2",
            "--placement", *(f"{label}={path}" for label, path in specs.items()), "--out", str(out), "--json"]
    if config["weights"]:
        args += ["--weights", str(shared / config["weights"])]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "topk_plugin", *args], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"{model_name} failed:\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, json.loads(done.stdout)


def _f(row, key, signed=False) -> str:
    if row is None or row.get(key) is None:
        return "–"
    lo, hi = row.get(f"{key}_ci") or (None, None)
    value = f"{row[key]:+.3f}" if signed else f"{row[key]:.3f}"
    return value if lo is None else f"{value} [{lo:.3f}, {hi:.3f}]"


def table(summary: dict) -> str:
    """Markdown: one line per setting, cue-conflict shape bias then edge and silhouette accuracy and kappa."""
    rows = summary["results"]
    by = {(r["name"], r["dataset"]): r for r in rows}
    names = list(dict.fromkeys(r["name"] for r in rows))
    lines = ["| setting | cue-conflict shape bias | vs dense | edge accuracy | vs dense | edge error consistency | "
             "vs dense | silhouette accuracy | vs dense | silhouette error consistency | vs dense |",
             "| --- |" + " --- |" * 10]
    humans = {h["dataset"]: h for h in summary["humans"]}
    lines.append(f"| humans | – | – | {_f(humans['edge'], 'accuracy')} | – | {_f(humans['edge'], 'error_consistency')} "
                 f"| – | {_f(humans['silhouette'], 'accuracy')} | – | {_f(humans['silhouette'], 'error_consistency')} | – |")
    for name in names:
        cue, edge, sil = by[(name, "cue-conflict")], by[(name, "edge")], by[(name, "silhouette")]
        label = name if cue["op"] == "dense" else f"{name} ({'+'.join(cue.get('layers') or [])}" + (
            f", fill={cue['fill']})" if cue.get("fill", "zero") != "zero" else ")")
        lines.append(f"| {label} | {_f(cue, 'shape_bias')} | {_f(cue, 'delta_shape_bias', True)} "
                     f"| {_f(edge, 'accuracy')} | {_f(edge, 'delta_accuracy', True)} "
                     f"| {_f(edge, 'error_consistency')} | {_f(edge, 'delta_error_consistency', True)} "
                     f"| {_f(sil, 'accuracy')} | {_f(sil, 'delta_accuracy', True)} "
                     f"| {_f(sil, 'error_consistency')} | {_f(sil, 'delta_error_consistency', True)} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--out", type=Path, default=Path("shape-suite"))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--check", action="store_true", help="score the rebuilt shift specs on the held-out half")
    parser.add_argument("--reuse-specs", action="store_true", help="use the spec files already in OUT/specs (a rerun "
                        "of the timed part only)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"CPU: {cpu_model()} ({vector_isa()}), {os.cpu_count()} cores, torch {torch.__version__}", flush=True)
    specs = {}
    for model_name in args.models:
        plain = model_name.split(":")[-1]
        if args.reuse_specs:
            specs[model_name] = {label: args.out / "specs" / f"{plain}_{label}.json" for label in ("best-zero", "best-shift")}
        else:
            specs[model_name] = build_specs(model_name, args.shared, args.out / "specs", args.check)
    print(f"load average before the runs: {os.getloadavg()}", flush=True)
    total_wall = total_cpu = 0.0
    for model_name in args.models:
        wall, cpu, summary = run_suite(model_name, specs[model_name], args.shared, args.out / model_name.split(":")[-1])
        total_wall += wall
        total_cpu += cpu
        print(f"\n{model_name}: wall {wall:.1f} s, CPU {cpu:.1f} s, load average after {os.getloadavg()}")
        print(table(summary), flush=True)
    print(f"\nboth models: wall {total_wall:.1f} s ({total_wall / 60:.1f} min), CPU {total_cpu:.1f} s")


if __name__ == "__main__":
    main()
