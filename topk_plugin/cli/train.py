"""``topk-plugin train``: the paper's classification recipe for any registry model (paper section 4.3).

Runs the same under ``torchrun --nproc_per_node N`` (data-parallel); the
integration (``topk_plugin.integrations.train``) is imported inside ``run`` only.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from .._io import json_safe
from .argtypes import bounded_float, default_workers, positive_int
from .integration import load_integration

HELP = "train a classifier with Top-K from scratch on an ImageFolder (paper 4.3); resumable, multi-process"


_positive_float = bounded_float(0, float("inf"), "{} must be >= 0")


def add_parser(sub) -> None:
    p = sub.add_parser("train", help=HELP, description=HELP + (
        ". Paper (Table 1): --model resnet18_cifar_topk20 (or resnet18_cifar, resnet18_cifar_topk20mean) with the "
        "defaults below on Imagenette; see examples/train_imagenette.sh. Multi-process: "
        "torchrun --nproc_per_node N -m topk_plugin train ..."))
    p.add_argument("--model", required=True, metavar="NAME",
                   help="any registry name: resnet18_cifar_topk20, resnet18_cifar_topk20mean, resnet18, tv:alexnet_topk10, ...")
    p.add_argument("--data", required=True, metavar="DIR", help="training images in ImageFolder layout (DIR/<class>/<image>)")
    p.add_argument("--val", metavar="DIR", help="validation images, same class folders")
    p.add_argument("--stylized-val", metavar="DIR", help="stylized validation images (topk-plugin stylize), same class folders")
    p.add_argument("--cue-conflict", metavar="DIR",
                   help="cue-conflict stimuli for shape bias (class folders must be ImageNet wnids); default: "
                        "$TOPK_PLUGIN_CUE_CONFLICT or the cache, if present")
    p.add_argument("--epochs", type=positive_int, default=50, metavar="N", help="(default: 50)")
    p.add_argument("--batch-size", type=positive_int, default=32, metavar="N", help="global batch, split over processes (default: 32)")
    p.add_argument("--lr", type=_positive_float, default=0.1, help="SGD learning rate, cosine schedule (default: 0.1)")
    p.add_argument("--momentum", type=_positive_float, default=0.9, help="(default: 0.9)")
    p.add_argument("--weight-decay", type=_positive_float, default=5e-4, help="(default: 5e-4)")
    p.add_argument("--img-size", type=positive_int, default=224, metavar="PX", help="training crop side (default: 224)")
    p.add_argument("--out", default="train-run", metavar="DIR", help="run folder (default: train-run)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from checkpoint.pt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=default_workers(),
                   help="image decoding processes per training process (0: none; default: 2, at most the CPUs available)")
    p.add_argument("--eval-every", type=positive_int, default=1, metavar="N", help="val accuracy every N epochs (default: 1)")
    p.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA (never used on the CPU)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda:LOCAL_RANK if available)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the run summary")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    train = load_integration("train")
    config = train.TrainConfig(
        model=args.model, data=args.data, val=args.val, out=args.out, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
        img_size=args.img_size, seed=args.seed, workers=args.workers, amp=not args.no_amp, device=args.device,
        resume=args.resume, stylized_val=args.stylized_val, cue_conflict=args.cue_conflict,
        eval_every=args.eval_every,
    )
    summary = train.train(config, progress=not args.json or sys.stderr.isatty(), log=lambda m: print(m, file=sys.stderr))
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    if args.json:
        print(json.dumps(json_safe(summary)))
    else:
        results = summary["results"]
        parts = [f"{key} top-1 {results[key]['top1']:.4f}" for key in ("val", "stylized_val") if key in results]
        sb = results.get("shape_bias", {})
        parts.append(f"shape bias {sb['shape_bias']:.3f}" if "shape_bias" in sb else "shape bias skipped")
        print(f"{summary['epoch']} epochs ({summary['epochs_run']} run, {summary['seconds']:.1f} s) -> "
              f"{summary['model_file']}; " + ", ".join(parts))
    return 0
