"""The claim run at convergence (issue 27): what each speed change buys, and whether the stop rule is tight.

    python benchmarks/bench_claim_convergence.py speed --shared ../shared [--images astronaut coffee] [--size 128]
    python benchmarks/bench_claim_convergence.py rule --shared ../shared [--photos 2] [--cue-conflict 2] \
        [--backbones squeezenet1_1 tf_efficientnet_lite0] [--checkpoint rule.json --resume]

``speed``: the 14 optimisations of an image (reconstruction and synthesis, K
5/10/20%) on SqueezeNet 1.1, in one process, interleaved so the machine's load
hits every way alike. Two tables:

* to the stop rule, on the first ``--images``: (1) torch's L-BFGS (strong
  Wolfe), one optimisation at a time; (2) per-row Adam, one at a time (a batch
  of 1); (3) Adam, the image's 14 as one batch. Per way: wall time, loss
  evaluations, how many converged, and the final loss against L-BFGS's on the
  same optimisation (geometric mean of the ratio, the best and the worst);
* the cost of an evaluation, ``--evals`` evaluations per way, ``--rounds``
  times in turn: Adam one at a time, an image's 14 as one batch, two images'
  28 as one batch; seconds per optimisation and evaluation.

Sharing the target's features across conditions and K is measured on its own:
the time of the 13 feature passes it saves per image.

``rule``: on a few images and both backbones, each image's batch runs with
``extend=2``: every optimisation goes on to twice the evaluations the rule
used. For every backbone, analysis, condition, K and score it prints the mean
over images at the rule's stop and after twice as long, the change, and the
change as a fraction of the half-width of the 95% bootstrap interval at the
stop; the rule is tight enough when no fraction exceeds 0.25. Hours of one core: each
image's rows are checkpointed as it finishes, and ``--resume`` goes on from there.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from topk_plugin._io import atomic_write_json, check_same_settings, read_json_checkpoint
from topk_plugin.analysis import FeatureExtractor, default_layers, load_backbone
from topk_plugin.analysis.claim import (
    ANALYSES,
    SCORES,
    ClaimConfig,
    ClaimImage,
    claim_images,
)
from topk_plugin.analysis.claim_report import summarize
from topk_plugin.analysis.common import prepare_image
from topk_plugin.analysis.convergence import StopRule
from topk_plugin.analysis.features import frozen
from topk_plugin.analysis.objectives import BatchObjective, Task
from topk_plugin.analysis.optimize import DEFAULT_LR, minimize_batch, minimize_lbfgs
from topk_plugin.analysis.scores import image_scores
from topk_plugin.kernel import cpu as _cpu
from topk_plugin.stats import bootstrap

SQUEEZENET_WEIGHTS = "weights/squeezenet1_1_imagenet_torchvision_norm.pth"


def backbone(name: str, shared: Path):
    weights = str(shared / SQUEEZENET_WEIGHTS) if name == "squeezenet1_1" else "offline"
    net = load_backbone(name, weights)
    return net, FeatureExtractor(net, default_layers(net, name))


def tasks_of(config: ClaimConfig, target: int = 0) -> list[tuple[Task, float | None]]:
    """The 14 optimisations of one image: ``(task, K as recorded, None for the K-free conditions)``."""
    out = []
    for analysis, (free, *masked) in ANALYSES.items():
        out.append((Task(analysis, free, config.ks[0], target), None))
        out += [(Task(analysis, cond, k, target), k) for k in config.ks for cond in masked]
    return out


def pick_images(args) -> list[ClaimImage]:
    photos = [im for im in claim_images(None, 0, photos=tuple(p for p in args.images if "/" not in p))]
    files = [ClaimImage(Path(p).stem, "file", Path(p)) for p in args.images if "/" in p]
    return photos + files


def speed(args) -> dict:
    config = ClaimConfig(backbones=(("squeezenet1_1", None),), size=args.size, tol=args.tol, window=args.window,
                         max_evals=args.max_evals, plateaus=args.plateaus)
    rule, lr = config.rule, DEFAULT_LR["adam"]
    net, extractor = backbone("squeezenet1_1", args.shared)
    images = pick_images(args)
    with frozen(net):
        targets = [prepare_image(im.image, args.size) for im in images]
        with torch.no_grad():
            began = time.perf_counter()
            features = [extractor(t) for t in targets]
            feature_pass = (time.perf_counter() - began) / len(targets)
        shape = tuple(targets[0].shape)
        tasks = [t for t, _ in tasks_of(config)]
        objective = BatchObjective(extractor, features[:1], tasks)

        ways = {}
        print(f"{images[0].name}: lbfgs, one at a time", flush=True)
        began, trackers = time.perf_counter(), []
        for i in range(len(tasks)):
            trackers.append(minimize_lbfgs(lambda x, i=i: objective(x, [i])[0], shape, rule=rule,
                                           lr=DEFAULT_LR["lbfgs"])[1])
        ways["lbfgs, one at a time"] = (time.perf_counter() - began, trackers)
        print(f"{images[0].name}: adam, one at a time", flush=True)
        began, trackers = time.perf_counter(), []
        for i in range(len(tasks)):
            trackers += minimize_batch(lambda x, rows, i=i: objective(x, [i]), 1, shape, rule=rule, lr=lr).trackers
        ways["adam, one at a time"] = (time.perf_counter() - began, trackers)
        print(f"{images[0].name}: adam, 14 as one batch", flush=True)
        began = time.perf_counter()
        trackers = minimize_batch(objective, len(tasks), shape, rule=rule, lr=lr).trackers
        ways["adam, the image's 14 as one batch"] = (time.perf_counter() - began, trackers)

        fixed = StopRule(tol=0.0, window=args.evals, max_evals=args.evals, plateaus=1)
        both = None  # two images' optimisations as one batch: needs a second image
        if len(images) >= 2:
            both = BatchObjective(extractor, features[:2],
                                  tasks + [Task(t.analysis, t.condition, t.k, 1) for t in tasks])
        cost = {"adam, one at a time": [], "adam, an image's 14 as one batch": [],
                "adam, two images' 28 as one batch": []}
        for r in range(args.rounds):
            print(f"cost of an evaluation, round {r + 1}/{args.rounds}", flush=True)
            began = time.perf_counter()
            for i in range(len(tasks)):
                minimize_batch(lambda x, rows, i=i: objective(x, [i]), 1, shape, rule=fixed, lr=lr)
            cost["adam, one at a time"].append((time.perf_counter() - began) / (len(tasks) * args.evals))
            began = time.perf_counter()
            minimize_batch(objective, len(tasks), shape, rule=fixed, lr=lr)
            cost["adam, an image's 14 as one batch"].append((time.perf_counter() - began) / (len(tasks) * args.evals))
            if both is not None:
                began = time.perf_counter()
                minimize_batch(both, 2 * len(tasks), shape, rule=fixed, lr=lr)
                cost["adam, two images' 28 as one batch"].append(
                    (time.perf_counter() - began) / (2 * len(tasks) * args.evals))

    print(f"\n{_cpu.describe()}; torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print(f"SqueezeNet 1.1, {args.size} px, {images[0].name}, the 14 optimisations of the claim run; rule {rule}\n")
    print(f"{'way':<36} {'seconds':>8} {'x faster':>8} {'evals':>7} {'converged':>10} "
          f"{'loss / lbfgs: geo-mean':>22} {'best':>6} {'worst':>6}")
    reference = np.array([t.summary()["loss_final"] for t in ways["lbfgs, one at a time"][1]])
    base = ways["lbfgs, one at a time"][0]
    results = {}
    for way, (seconds, trackers) in ways.items():
        losses = np.array([t.summary()["loss_final"] for t in trackers])
        ratio = losses / reference
        results[way] = {"seconds": seconds, "evals": sum(t.summary()["evals"] for t in trackers),
                        "converged": sum(t.converged for t in trackers), "optimisations": len(trackers),
                        "loss_final": losses.tolist(), "loss_ratio": ratio.tolist(),
                        "loss_ratio_geomean": float(np.exp(np.log(ratio).mean()))}
        print(f"{way:<36} {seconds:>8.0f} {base / seconds:>8.2f} {results[way]['evals']:>7} "
              f"{results[way]['converged']:>4} of {len(trackers):<3} {results[way]['loss_ratio_geomean']:>22.3f} "
              f"{ratio.min():>6.2f} {ratio.max():>6.2f}")
    print("\nper condition, final loss: " + "; ".join(
        f"{t.analysis[:5]} {t.condition} {t.k:g}: " + " / ".join(f"{results[w]['loss_final'][i]:.4g}" for w in results)
        for i, t in enumerate(tasks)))
    print(f"\n{'cost of an evaluation':<36} {'ms per optimisation and evaluation (median of rounds)':>52} {'x faster':>9}")
    one = float(np.median(cost["adam, one at a time"]))
    for way, values in cost.items():
        if values:
            print(f"{way:<36} {1000 * float(np.median(values)):>52.1f} {one / float(np.median(values)):>9.2f}")
    print(f"\nsharing the target's features: one feature pass takes {feature_pass * 1000:.0f} ms; per image the "
          f"13 it saves are {13 * feature_pass:.2f} s")
    return {"cpu": _cpu.describe(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "size": args.size, "rule": rule.to_json(), "images": [im.name for im in images],
            "feature_pass_seconds": feature_pass, "to_the_rule": results, "seconds_per_evaluation": cost,
            "tasks": [t.__dict__ for t in tasks]}


RULE_CHECKPOINT_FORMAT = "topk-plugin-rule-check-1"


def _share(change: float, half_width: float) -> float:
    """|change| as a fraction of an interval's half-width (the criterion: at most 0.25)."""
    return abs(change) / half_width if half_width > 0 else (0.0 if change == 0 else math.inf)


def rule_check(args) -> dict:
    """Each image's rows go to ``--checkpoint`` as soon as they exist; ``--resume`` skips the images it holds."""
    config = ClaimConfig(backbones=tuple((b, None) for b in args.backbones), size=args.size,
                         tol=args.tol, window=args.window, max_evals=args.max_evals, plateaus=args.plateaus)
    images = claim_images(args.shared / "data" / "cue-conflict" if args.cue_conflict else None, args.cue_conflict,
                          photos=("astronaut", "coffee", "chelsea", "rocket")[: args.photos], seed=0)
    settings = {"size": args.size, "rule": config.rule.to_json(), "images": [im.name for im in images]}
    rows, others, spent = [], [], 0.0  # others: rows of backbones not checked now, kept in the checkpoint
    if args.resume and args.checkpoint.exists():
        saved = read_json_checkpoint(args.checkpoint, RULE_CHECKPOINT_FORMAT, required=("settings", "rows", "seconds"))
        check_same_settings(args.checkpoint, saved["settings"], settings)
        for r in saved["rows"]:
            (rows if r["backbone"] in args.backbones else others).append(r)
        spent = saved["seconds"]
        print(f"resuming from {args.checkpoint}: {len(rows)} optimisations done", flush=True)
    done = {(r["backbone"], r["image"]) for r in rows}
    began = time.perf_counter() - spent
    for name, _ in config.backbones:
        if all((name, im.name) in done for im in images):
            continue
        net, extractor = backbone(name, args.shared)
        with frozen(net):
            for im in images:
                if (name, im.name) in done:
                    continue
                target = prepare_image(im.image, args.size)
                with torch.no_grad():
                    features = extractor(target)
                tasks = tasks_of(config)
                objective = BatchObjective(extractor, [features], [t for t, _ in tasks])
                t0 = time.perf_counter()
                result = minimize_batch(objective, len(tasks), tuple(target.shape), rule=config.rule,
                                        lr=config.learning_rate, extend=2)
                print(f"{name} {im.name}: {time.perf_counter() - t0:.0f} s", flush=True)
                for i, (task, k) in enumerate(tasks):
                    with torch.no_grad():
                        at_stop = image_scores(result.images[i : i + 1], target, extractor(result.images[i : i + 1]),
                                               features)
                        longer = image_scores(result.extended[i : i + 1], target,
                                              extractor(result.extended[i : i + 1]), features)
                    rows.append({"backbone": name, "image": im.name, "analysis": task.analysis,
                                 "condition": task.condition, "k": k, **result.trackers[i].summary(),
                                 "at_stop": at_stop, "twice": longer})
                atomic_write_json(args.checkpoint, {"format": RULE_CHECKPOINT_FORMAT, "settings": settings,
                                                    "rows": others + rows, "seconds": time.perf_counter() - began})
    seconds = time.perf_counter() - began
    checks, worst = [], {}
    print(f"\n{_cpu.describe()}; torch {torch.__version__}, {torch.get_num_threads()} thread(s); {seconds:.0f} s")
    print(f"{len(images)} images ({', '.join(im.name for im in images)}), {args.size} px, rule {config.rule}; "
          "each optimisation run on to twice the evaluations the rule used\n")
    print(f"{'backbone':<22} {'analysis':<18} {'condition':<13} {'K':>5} {'score':<25} {'at stop':>8} {'x2':>8} "
          f"{'change':>8} {'half-width':>10} {'|change|/hw':>11}")
    keys = list(dict.fromkeys((r["backbone"], r["analysis"], r["condition"], r["k"]) for r in rows))
    for key in keys:
        group = [r for r in rows if (r["backbone"], r["analysis"], r["condition"], r["k"]) == key]
        for s in SCORES:
            a = np.array([r["at_stop"][s] for r in group])
            b = np.array([r["twice"][s] for r in group])
            iv = bootstrap(a, seed=0)
            half = (iv.hi - iv.lo) / 2
            change = float(b.mean() - a.mean())
            ratio = _share(change, half)
            checks.append({"backbone": key[0], "analysis": key[1], "condition": key[2], "k": key[3], "score": s,
                           "at_stop": float(a.mean()), "twice": float(b.mean()), "change": change,
                           "half_width": half, "ratio": ratio})
            worst[s] = max(worst.get(s, 0.0), ratio)
            k = "-" if key[3] is None else f"{key[3]:g}"
            print(f"{key[0]:<22} {key[1]:<18} {key[2]:<13} {k:>5} {s:<25} {a.mean():>8.3f} {b.mean():>8.3f} "
                  f"{change:>+8.4f} {half:>10.4f} {ratio:>11.2f}")
    print("\nlargest |change| / half-width per score: " + ", ".join(f"{s} {v:.2f}" for s, v in worst.items()))
    differences = difference_check(rows)
    evals = [r["evals"] for r in rows]
    print(f"rule's evaluations per optimisation: median {np.median(evals):.0f}, range {min(evals)}-{max(evals)}; "
          f"{sum(not r['converged'] for r in rows)} of {len(rows)} stopped at the cap")
    return {"cpu": _cpu.describe(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "seconds": seconds, "size": args.size, "rule": config.rule.to_json(),
            "images": [im.name for im in images], "worst_ratio": worst, "checks": checks,
            "differences": differences, "rows": rows}


def difference_check(rows: list[dict]) -> list[dict]:
    """What the verdict reads: the paired differences (Top-K minus the rest) and each part's verdict,
    at the rule's stop and after twice as long, each summarised as the claim run summarises its rows."""
    def as_run(when):
        return [{**{k: r[k] for k in ("backbone", "image", "analysis", "condition", "k", "evals", "converged")},
                 **r[when]} for r in rows]

    out = []
    print(f"\n{'backbone':<22} {'analysis':<18} {'K':>5} {'difference':<25} {'at stop':>8} {'x2':>8} {'change':>8} "
          f"{'half-width':>10} {'|change|/hw':>11}")
    for stop, twice in zip(summarize(as_run("at_stop")), summarize(as_run("twice")), strict=True):
        for s in SCORES:
            a, b = stop["difference"][s], twice["difference"][s]
            half = (a.hi - a.lo) / 2
            change = b.value - a.value
            ratio = _share(change, half)
            out.append({"backbone": stop["backbone"], "analysis": stop["analysis"], "k": stop["k"], "score": s,
                        "difference_of": stop["difference_of"], "at_stop": a.value, "twice": b.value,
                        "change": change, "half_width": half, "ratio": ratio})
            print(f"{stop['backbone']:<22} {stop['analysis']:<18} {stop['k']:>5g} {s:<25} {a.value:>+8.3f} "
                  f"{b.value:>+8.3f} {change:>+8.4f} {half:>10.4f} {ratio:>11.2f}")
        if "verdict" in stop:
            same = "same" if stop["verdict"] == twice["verdict"] else "CHANGED"
            print(f"{'':<22} verdict at stop {stop['verdict']}, x2 {twice['verdict']}: {same}")
            out[-1]["verdict"] = {"at_stop": stop["verdict"], "twice": twice["verdict"]}
    worst = {s: max(d["ratio"] for d in out if d["score"] == s) for s in SCORES}
    print("largest |change| / half-width of a paired difference: "
          + ", ".join(f"{s} {v:.2f}" for s, v in worst.items()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("speed", "rule"))
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--images", nargs="+", default=["astronaut", "coffee"],
                        help="speed: scikit-image photo names or image files")
    parser.add_argument("--photos", type=int, default=2, help="rule: the first N photographs")
    parser.add_argument("--cue-conflict", type=int, default=2, help="rule: the first N stimuli of the seeded sample")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--evals", type=int, default=60, help="speed: evaluations per way in the cost table")
    parser.add_argument("--rounds", type=int, default=3, help="speed: rounds of the cost table")
    rule = StopRule()
    parser.add_argument("--tol", type=float, default=rule.tol)
    parser.add_argument("--window", type=int, default=rule.window)
    parser.add_argument("--max-evals", type=int, default=rule.max_evals)
    parser.add_argument("--plateaus", type=int, default=rule.plateaus)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--backbones", nargs="+", default=["squeezenet1_1", "tf_efficientnet_lite0"],
                        choices=("squeezenet1_1", "tf_efficientnet_lite0"), help="rule: the backbones to check")
    parser.add_argument("--checkpoint", type=Path, default=Path("rule-check.checkpoint.json"),
                        help="rule: each image's rows are written here as they finish")
    parser.add_argument("--resume", action="store_true", help="rule: skip the images --checkpoint holds")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = speed(args) if args.part == "speed" else rule_check(args)
    if args.json:
        atomic_write_json(args.json, out)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
