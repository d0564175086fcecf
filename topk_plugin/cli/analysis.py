"""``topk-plugin texture-synthesis | reconstruct | masks``: why Top-K gives shape bias (paper Figs. 2, 3, 8, 9)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .._io import json_safe
from ..analysis import reconstruct, texture_synthesis, topk_masks
from ..analysis.convergence import StopRule
from ..analysis.optimize import DEFAULT_LR, OPTIMIZERS
from .argtypes import bounded_float, positive_int

TEXTURE_HELP = ("Gatys texture synthesis matching the Gram matrices of all / without Top-K / Top-K-only responses "
                "(paper Fig. 2)")
RECONSTRUCT_HELP = ("reconstruct an image by optimising it to match the target's all / Top-K / non-Top-K responses "
                    "(paper Fig. 3)")
MASKS_HELP = "binary Top-K map of every channel of a layer, tiled and overlaid on the image (paper Figs. 8, 9)"


def topk_value(text: str):
    """``0.05`` is a fraction of the positions, ``3`` a count of positions."""
    try:
        return float(text) if any(ch in text for ch in ".eE") else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction (0.05) or a count (3)") from None


def _common(p: argparse.ArgumentParser, model_required: bool = False) -> None:
    p.add_argument("--image", required=True, metavar="FILE", help="the target image (any format Pillow reads)")
    p.add_argument("--model", required=model_required, default=None if model_required else "vgg16", metavar="NAME",
                   help="torchvision or timm model name" + ("" if model_required else " (default: vgg16, as in the paper)"))
    p.add_argument("--weights", metavar="FILE",
                   help="local state dict (offline); 'offline' for weights a pip package ships "
                        "(tf_efficientnet_lite0); 'random' for an untrained net; default: the library's pretrained weights")
    p.add_argument("--topk", type=topk_value, default=0.05, metavar="F",
                   help="K: a fraction of the positions (0.05, the authors' default) or an int count")
    p.add_argument("--out", metavar="DIR", default="analysis-results", help="output folder (default: analysis-results)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available, else cpu)")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object (paths and scores) on stdout")


def _optimisation(p: argparse.ArgumentParser) -> None:
    p.add_argument("--layers", nargs="+", metavar="NAME",
                   help="layers by module name (default: relu1_1, pool1..pool4 for VGG; one per resolution otherwise)")
    add_stop_rule_options(p, StopRule())
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adam",
                   help="adam (default: all conditions optimised as one batch) or lbfgs (one condition at a time; its line "
                        "search stalls on the Top-K-masked texture syntheses)")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default: " + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items()) + ")")
    p.add_argument("--size", type=int, default=256, metavar="PX", help="square image side (default: 256)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial noise (default: 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_stop_rule_options(p: argparse.ArgumentParser, rule) -> None:
    """--tol, --window, --max-evals, --plateaus: when an optimisation stops (``convergence.StopRule``)."""
    p.add_argument("--tol", type=bounded_float(0, 0.999, "--tol {} must be a relative change in [0, 1)"),
                   default=rule.tol, metavar="F",
                   help=f"converged when the best loss improved by at most F (relative) over --window "
                        f"evaluations (default: {rule.tol:g})")
    p.add_argument("--window", type=positive_int, default=rule.window, metavar="N",
                   help=f"evaluations the improvement is measured over (default: {rule.window})")
    p.add_argument("--max-evals", type=positive_int, default=rule.max_evals, metavar="N",
                   help=f"stop after N loss evaluations at the latest; recorded as not converged "
                        f"(default: {rule.max_evals})")
    p.add_argument("--plateaus", type=positive_int, default=rule.plateaus, metavar="N",
                   help=f"converged at the N-th plateau; Adam's learning rate is divided by 4 at each one before "
                        f"(default: {rule.plateaus})")


def add_parser(sub) -> None:
    p = sub.add_parser("texture-synthesis", help=TEXTURE_HELP, description=TEXTURE_HELP)
    _common(p)
    _optimisation(p)
    p.set_defaults(run=run_texture)

    p = sub.add_parser("reconstruct", help=RECONSTRUCT_HELP, description=RECONSTRUCT_HELP)
    _common(p)
    _optimisation(p)
    p.set_defaults(run=run_reconstruct)

    p = sub.add_parser("masks", help=MASKS_HELP, description=MASKS_HELP)
    _common(p, model_required=True)
    p.add_argument("--layer", metavar="NAME", help="module name (default: the third default layer, e.g. VGG's pool2)")
    p.add_argument("--size", type=int, default=224, metavar="PX", help="square image side (default: 224)")
    p.add_argument("--channels", type=int, default=64, metavar="N", help="channels in the tiled map, most active first; 0 = all")
    p.add_argument("--top", type=int, default=8, metavar="N", help="most active channels overlaid on the image (default: 8)")
    p.set_defaults(run=run_masks)


def _progress(args) -> bool:
    return not args.no_progress and (not args.json or sys.stderr.isatty())


def _print_result(args, summary: dict) -> None:
    if args.json:
        print(json.dumps(json_safe(summary)))
        return
    print(f"{summary['kind']}: {summary['model']}, layers {', '.join(summary['layers'])}, K={summary['topk']}")
    print(f"{'condition':<14} {'ssim':>7} {'edge_corr':>9} {'gram_dist':>9} {'colour_dist':>11} {'loss 0 -> best':>20} "
          f"{'evals':>6}  converged")
    for cond, s in summary["conditions"].items():
        print(f"{cond:<14} {s['ssim']:>7.3f} {s['edge_correlation']:>9.3f} {s['gram_distance']:>9.3f} "
              f"{s['color_histogram_distance']:>11.3f} {s['loss_initial']:>9.4g} -> {s['loss_final']:<9.4g} "
              f"{s['evals']:>6}  {'yes' if s['converged'] else 'NO (stopped at --max-evals)'}")
    print("structure (higher = closer): ssim, edge_corr; texture/colour (lower = closer): gram_dist, colour_dist")
    if summary["not_converged"]:
        print(f"not converged: {', '.join(summary['not_converged'])}; raise --max-evals or --tol")
    print(f"wrote {summary['grid']} and {summary['json']}")


def _run(args, fn) -> int:
    result = fn(
        args.image, args.model, weights=args.weights, layers=args.layers, topk=args.topk, optimizer=args.optimizer,
        lr=args.lr, tol=args.tol, window=args.window, max_evals=args.max_evals, plateaus=args.plateaus, size=args.size,
        seed=args.seed,
        device=args.device, progress=_progress(args),
    )
    result.save(args.out, Path(args.image).stem)
    _print_result(args, result.summary())
    return 0


def run_texture(args: argparse.Namespace) -> int:
    return _run(args, texture_synthesis)


def run_reconstruct(args: argparse.Namespace) -> int:
    return _run(args, reconstruct)


def run_masks(args: argparse.Namespace) -> int:
    result = topk_masks(args.image, args.model, weights=args.weights, layer=args.layer, topk=args.topk,
                        size=args.size, device=args.device)
    result.save(args.out, Path(args.image).stem, max_channels=args.channels or None, top=args.top)
    summary = result.summary(args.top)
    if args.json:
        print(json.dumps(json_safe(summary)))
    else:
        print(f"masks: {summary['model']} layer {summary['layer']} {tuple(summary['shape'])}, "
              f"K={summary['k']} of {summary['positions']} positions (kept fraction {summary['kept_fraction']:.4f})")
        print("most active channels: " + ", ".join(f"{c['channel']} ({c['activity']:.3g})" for c in summary["top_channels"]))
        print(f"wrote {summary['paths']['tiled']}, {summary['paths']['overlay']} and {summary['paths']['json']}")
    return 0
