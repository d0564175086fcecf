"""The claim run at convergence (issue 27): what each speed change buys, and whether the stop rule is tight.

    python benchmarks/bench_claim_convergence.py speed --shared ../shared [--images astronaut coffee] [--size 128]
    python benchmarks/bench_claim_convergence.py rule --shared ../shared [--photos 2] [--cue-conflict 2] \
        [--backbones squeezenet1_1 tf_efficientnet_lite0] [--checkpoint rule.json --resume] \
        [--optimizer lbfgs --tol 2e-3 5e-4 --window 50 100]

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

With ``--optimizer lbfgs`` several rules are checked in one run (every
combination of the ``--tol``, ``--window`` and ``--max-evals`` given): each
optimisation is one L-BFGS run, and every rule reads its stop and its twice as
long off that run. This is exact because L-BFGS's path does not depend on the
rule (the rule only says where to stop; a plateau changes nothing for L-BFGS),
and the result at an evaluation is the best iterate so far, which no rule
changes either. Adam's path does depend on its rule (its steps shrink at each
plateau), so Adam checks one rule per run.
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
from topk_plugin.analysis.convergence import StopRule, Tracker
from topk_plugin.analysis.features import frozen
from topk_plugin.analysis.objectives import BatchObjective, Task
from topk_plugin.analysis.optimize import DEFAULT_LR, OPTIMIZERS, minimize_batch, minimize_lbfgs
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
    (rule,) = rules_of(args)
    config, lr = ClaimConfig(backbones=(("squeezenet1_1", None),), size=args.size), DEFAULT_LR["adam"]
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


class _AllStopped(Exception):
    """Every rule of an L-BFGS rule check has run twice as long: the run can end."""


def lbfgs_under_rules(loss_fn, shape: tuple, rules: list[StopRule], *, lr: float, seed: int = 0) -> list[tuple]:
    """One L-BFGS run (``optimize.minimize_lbfgs``) read by every rule: per rule, its tracker's summary, the
    best image at its stop and the best image at twice its evaluations."""
    trackers = [Tracker(rule, extend=2) for rule in rules]
    at_stop, twice = [None] * len(rules), [None] * len(rules)
    best = [math.inf, None]  # the lowest loss so far and its image: the same whatever the rule

    def watched(image):
        loss = loss_fn(image)
        value = float(loss.detach())
        if value < best[0]:
            best[:] = value, image.detach().clone()
        for i, tracker in enumerate(trackers):
            if not tracker.done:
                tracker.update(value)
                if tracker.stopped_now:
                    at_stop[i] = best[1]
                if tracker.done:
                    twice[i] = best[1]
        if all(t.done for t in trackers):
            raise _AllStopped
        return loss

    longest = 2 * max(rule.max_evals for rule in rules) + 1  # never reached: every tracker is done by then
    try:
        minimize_lbfgs(watched, shape, rule=StopRule(tol=0.0, window=longest, max_evals=longest, plateaus=1),
                       lr=lr, seed=seed)
    except _AllStopped:
        pass
    for i, tracker in enumerate(trackers):  # only when the loss became NaN, which ends the run early
        if not tracker.done:
            tracker.stop()
            at_stop[i] = best[1] if at_stop[i] is None else at_stop[i]
            twice[i] = best[1]
    return [(t.summary(), at_stop[i], twice[i]) for i, t in enumerate(trackers)]


def rules_of(args) -> list[StopRule]:
    """Every combination of the ``--tol``, ``--window`` and ``--max-evals`` given; Adam takes one."""
    rules = [StopRule(tol=t, window=w, max_evals=m, plateaus=args.plateaus)
             for t in args.tol for w in args.window for m in args.max_evals]
    if len(rules) > 1 and not (args.part == "rule" and args.optimizer == "lbfgs"):
        raise SystemExit(f"{len(rules)} rules given (--tol, --window, --max-evals): only `rule --optimizer lbfgs` "
                         "checks several in one run (Adam's path depends on its rule); give one value of each")
    return rules


def _optimise_image(config: ClaimConfig, rules, extractor, target, features, tasks) -> list[list[tuple]]:
    """Per task, per rule: (tracker summary, best image at the rule's stop, best image at twice as long)."""
    objective = BatchObjective(extractor, [features], [t for t, _ in tasks])
    shape = tuple(target.shape)
    if config.optimizer == "adam":
        result = minimize_batch(objective, len(tasks), shape, rule=rules[0], lr=config.learning_rate,
                                seed=config.seed, extend=2)
        return [[(result.trackers[i].summary(), result.images[i : i + 1], result.extended[i : i + 1])]
                for i in range(len(tasks))]
    return [lbfgs_under_rules(lambda x, i=i: objective(x, [i])[0], shape, rules, lr=config.learning_rate,
                              seed=config.seed) for i in range(len(tasks))]


def score_results(results: list[list[tuple]], target, extractor, features) -> list[list[tuple]]:
    """The images of ``_optimise_image``'s results replaced by their scores; an image that several rules
    stopped at is scored once (keyed by identity: ``results`` keeps every image alive meanwhile)."""
    scored = {}

    def scores(image):
        if id(image) not in scored:
            with torch.no_grad():
                scored[id(image)] = image_scores(image, target, extractor(image), features)
        return scored[id(image)]

    return [[(summary, scores(a), scores(b)) for summary, a, b in per_rule] for per_rule in results]


def rule_check(args) -> dict:
    """Each image's rows go to ``--checkpoint`` as soon as they exist; ``--resume`` skips the images it holds."""
    rules = rules_of(args)
    config = ClaimConfig(backbones=tuple((b, None) for b in args.backbones), size=args.size, optimizer=args.optimizer)
    images = claim_images(args.shared / "data" / "cue-conflict" if args.cue_conflict else None, args.cue_conflict,
                          photos=("astronaut", "coffee", "chelsea", "rocket")[: args.photos], seed=0)
    names = [im.name for im in images]
    if args.optimizer == "adam":  # Adam's settings as they were, so its earlier checkpoints resume
        settings = {"size": args.size, "rule": rules[0].to_json(), "images": names}
    else:
        settings = {"size": args.size, "optimizer": args.optimizer, "rules": [r.to_json() for r in rules],
                    "images": names}
    rows, others, spent = [], [], 0.0  # others: rows of backbones not checked now, kept in the checkpoint
    if args.resume and args.checkpoint.exists():
        saved = read_json_checkpoint(args.checkpoint, RULE_CHECKPOINT_FORMAT, required=("settings", "rows", "seconds"))
        check_same_settings(args.checkpoint, saved["settings"], settings)
        for r in saved["rows"]:
            (rows if r["backbone"] in args.backbones else others).append(r)
        spent = saved["seconds"]
        print(f"resuming from {args.checkpoint}: {len(rows)} rows done", flush=True)
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
                t0 = time.perf_counter()
                results = _optimise_image(config, rules, extractor, target, features, tasks)
                print(f"{name} {im.name}: {time.perf_counter() - t0:.0f} s", flush=True)
                for (task, k), per_rule in zip(tasks, score_results(results, target, extractor, features), strict=True):
                    for j, (summary, at_stop, longer) in enumerate(per_rule):
                        rows.append({"backbone": name, "image": im.name, "analysis": task.analysis,
                                     "condition": task.condition, "k": k, **summary,
                                     **({"rule": j} if len(rules) > 1 else {}), "at_stop": at_stop, "twice": longer})
                atomic_write_json(args.checkpoint, {"format": RULE_CHECKPOINT_FORMAT, "settings": settings,
                                                    "rows": others + rows, "seconds": time.perf_counter() - began})
    seconds = time.perf_counter() - began
    print(f"\n{_cpu.describe()}; torch {torch.__version__}, {torch.get_num_threads()} thread(s); {seconds:.0f} s")
    print(f"{len(images)} images ({', '.join(im.name for im in images)}), {args.size} px, {args.optimizer}; "
          "each optimisation run on to twice the evaluations the rule used")
    reports = [rule_report(rule, [r for r in rows if r.get("rule", 0) == j]) for j, rule in enumerate(rules)]
    if len(rules) > 1:
        print(f"\n{'rule':<58} {'means > 0.25':>12} {'worst':>6} {'differences > 0.25':>18} {'worst':>6} "
              f"{'verdicts changed':>16} {'median evals':>12} {'at cap':>7}")
        for report in reports:
            print(f"{str(StopRule(**report['rule'])):<58} {report['means_over']:>5} of {len(report['checks']):<4} "
                  f"{max(report['worst_ratio'].values()):>6.2f} {report['differences_over']:>11} of "
                  f"{len(report['differences']):<4} {report['worst_difference']:>6.2f} "
                  f"{report['verdicts_changed']:>16} {report['evals_median']:>12.0f} {report['at_cap']:>7}")
    return {"cpu": _cpu.describe(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "seconds": seconds, "size": args.size, "optimizer": args.optimizer,
            "images": names, "rules": reports, "rows": rows}


def rule_report(rule: StopRule, rows: list[dict]) -> dict:
    """One rule's check: every condition mean at the stop and twice as long, then the paired differences."""
    checks, worst = [], {}
    print(f"\nrule {rule}")
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
    at_cap = sum(not r["converged"] for r in rows)
    print(f"rule's evaluations per optimisation: median {np.median(evals):.0f}, range {min(evals)}-{max(evals)}; "
          f"{at_cap} of {len(rows)} stopped at the cap")
    return {"rule": rule.to_json(), "worst_ratio": worst, "checks": checks, "differences": differences,
            "means_over": sum(c["ratio"] > 0.25 for c in checks),
            "differences_over": sum(d["ratio"] > 0.25 for d in differences),
            "worst_difference": max(d["ratio"] for d in differences),
            "verdicts_changed": sum(d["verdict"]["at_stop"] != d["verdict"]["twice"] for d in differences
                                    if "verdict" in d),
            "evals_median": float(np.median(evals)), "at_cap": at_cap}


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
    several = " (several: rule --optimizer lbfgs checks every combination)"
    parser.add_argument("--tol", type=float, nargs="+", default=[rule.tol], help="the rule's tolerance" + several)
    parser.add_argument("--window", type=int, nargs="+", default=[rule.window], help="its window" + several)
    parser.add_argument("--max-evals", type=int, nargs="+", default=[rule.max_evals], help="its cap" + several)
    parser.add_argument("--plateaus", type=int, default=rule.plateaus)
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="rule: the optimiser to check")
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
