"""``topk-plugin analyze-claim``: do Top-K responses carry structure and the rest texture, on many images?"""
from __future__ import annotations

import argparse
import json
import sys
import time

from .._io import json_safe
from ..analysis.claim import PHOTOS, ClaimConfig, claim_images, run_claim
from ..analysis.claim_report import summary_markdown, verdict_sentences, write_report
from ..analysis.convergence import StopRule
from ..analysis.optimize import DEFAULT_LR, OPTIMIZERS
from .analysis import add_stop_rule_options
from .argtypes import check_fractions, positive_int

HELP = ("measure the paper's claim (Figs. 2-3) on many images: reconstruction and texture synthesis from "
        "all / Top-K / non-Top-K responses, scores with bootstrap intervals and a verdict per backbone and K")
EPILOG = """example (the run on the docs' Benchmarks page: hours of one CPU core; --resume continues an interrupted run):
  topk-plugin analyze-claim --cue-conflict cue-conflict/ \\
      --backbone squeezenet1_1=squeezenet1_1.pth \\
      --backbone tf_efficientnet_lite0=offline --out claim/"""


def backbone_spec(text: str) -> tuple[str, str | None]:
    """``NAME`` (the library's pretrained weights) or ``NAME=WEIGHTS`` (a file, offline, random)."""
    name, _, weights = text.partition("=")
    if not name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME or NAME=WEIGHTS")
    return name, weights or None



def add_parser(sub) -> None:
    p = sub.add_parser("analyze-claim", help=HELP, description=HELP, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", dest="backbones", action="append", type=backbone_spec, required=True,
                   metavar="NAME[=WEIGHTS]",
                   help="repeatable; WEIGHTS: a local state dict, 'offline' (weights a pip package ships), 'random'")
    p.add_argument("--cue-conflict", metavar="DIR", help="cue-conflict stimuli folder (needed unless --n-cue-conflict 0)")
    p.add_argument("--n-cue-conflict", type=int, default=12, metavar="N",
                   help="seeded sample of N stimuli, stratified by shape category (default: 12)")
    p.add_argument("--photos", nargs="*", default=list(PHOTOS), choices=PHOTOS,
                   help=f"scikit-image photographs (default: {' '.join(PHOTOS)})")
    p.add_argument("--topk", nargs="+", type=float, default=[0.05, 0.1, 0.2], metavar="F",
                   help="K as fractions of the positions (default: 0.05 0.1 0.2)")
    p.add_argument("--size", type=positive_int, default=128, metavar="PX", help="square image side (default: 128)")
    add_stop_rule_options(p, StopRule())
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adam",
                   help="adam (default: the conditions of --images-per-batch images as one batch) or lbfgs "
                        "(one optimisation at a time; its line search stalls on the Top-K-masked texture syntheses)")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default: " + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items()) + ")")
    p.add_argument("--images-per-batch", type=positive_int, default=1, metavar="N",
                   help="images optimised together (14 optimisations each at 3 K); default 1")
    p.add_argument("--seed", type=int, default=0, help="seeds the sample, the initial noise and the bootstrap (default: 0)")
    p.add_argument("--examples", nargs="*", metavar="IMAGE",
                   help="images shown in claim_examples.png (default: the first photo and the first stimulus)")
    p.add_argument("--out", default="claim-results", metavar="DIR", help="output folder (default: claim-results)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available, else cpu)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out with the same options")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object (verdict and paths) on stdout")
    p.set_defaults(run=run)


def _default_examples(images) -> list[str]:
    firsts = {}
    for im in images:
        firsts.setdefault(im.source, im.name)
    return list(firsts.values())


def run(args: argparse.Namespace) -> int:
    check_fractions(args.topk, dense_zero=False)
    ks = sorted(set(args.topk))
    if args.n_cue_conflict and not args.cue_conflict:
        raise ValueError("--n-cue-conflict needs --cue-conflict DIR (or pass --n-cue-conflict 0 for photos only)")
    images = claim_images(args.cue_conflict, args.n_cue_conflict, args.photos, seed=args.seed)
    if not images:
        raise ValueError("no images: give --photos and/or --n-cue-conflict N with --cue-conflict DIR")
    names = {im.name for im in images}
    examples = args.examples if args.examples is not None else _default_examples(images)
    unknown = [e for e in examples if e not in names]
    if unknown:
        raise ValueError(f"--examples {unknown} are not among this run's images: {sorted(names)}")
    config = ClaimConfig(backbones=tuple(args.backbones), ks=tuple(ks), size=args.size, optimizer=args.optimizer,
                         lr=args.lr, tol=args.tol, window=args.window, max_evals=args.max_evals, plateaus=args.plateaus,
                         images_per_batch=args.images_per_batch, seed=args.seed)
    start = time.perf_counter()
    rows = run_claim(images, config, args.out, examples=examples, resume=args.resume, device=args.device,
                     progress=not args.json or sys.stderr.isatty())
    report = write_report(rows, args.out, examples=examples, seed=args.seed)
    seconds = time.perf_counter() - start
    not_converged = sum(not r["converged"] for r in rows)
    if args.json:
        print(json.dumps(json_safe({"verdict": verdict_sentences(report["entries"]), "paths": report["paths"],
                                    "images": len(images), "optimisations": len(rows),
                                    "not_converged": not_converged, "seconds": round(seconds, 1)})))
        return 0
    print(summary_markdown(report["entries"]))
    for line in verdict_sentences(report["entries"]):
        print(line)
    print(f"{not_converged} of {len(rows)} optimisations did not converge (stopped at --max-evals {args.max_evals})")
    print(f"{len(images)} images, {seconds:.0f} s; wrote " + ", ".join(report["paths"].values()))
    return 0
