"""``topk-plugin stylize``: AdaIN-stylized copy of an image folder, for the paper's stylized evaluation (AdaIN, alpha 0.5).

Needs the AdaIN project's encoder and decoder weights; the integration
(``topk_plugin.integrations.stylize``) is imported inside ``run`` only.
"""
from __future__ import annotations

import argparse
import json
import sys

from .._io import json_safe
from .argtypes import bounded_float
from .integration import load_integration

HELP = "AdaIN-stylize an image folder (keeps its ImageFolder layout) for the stylized evaluation"


_fraction = bounded_float(0, 1, "{} is not in [0, 1] (paper: 0.5)")


def _size(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be >= 0 (0 keeps the size)")
    return value


def add_parser(sub) -> None:
    p = sub.add_parser("stylize", help=HELP, description=HELP + (
        ". Weights: vgg_normalised.pth and decoder.pth from the Releases of "
        "https://github.com/naoto0804/pytorch-AdaIN. Existing outputs are skipped, so a rerun resumes."))
    p.add_argument("--content", required=True, metavar="DIR", help="images to stylize, e.g. the val ImageFolder")
    p.add_argument("--style", required=True, metavar="DIR", help="style images (each content image gets one, seeded)")
    p.add_argument("--encoder", required=True, metavar="FILE", help="vgg_normalised.pth (AdaIN's normalised VGG-19)")
    p.add_argument("--decoder", required=True, metavar="FILE", help="decoder.pth (AdaIN's trained decoder)")
    p.add_argument("--alpha", type=_fraction, default=0.5, help="style strength in [0, 1] (paper: 0.5)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder, same relative paths as --content")
    p.add_argument("--content-size", type=_size, default=512, metavar="PX", help="shorter side before stylizing (0: as is; default 512)")
    p.add_argument("--style-size", type=_size, default=512, metavar="PX", help="shorter side of style images (0: as is; default 512)")
    p.add_argument("--seed", type=int, default=0, help="seed of the content-style pairing")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the summary")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    stylize = load_integration("stylize")
    summary = stylize.stylize_folder(
        args.content, args.style, args.encoder, args.decoder, args.out, alpha=args.alpha,
        content_size=args.content_size, style_size=args.style_size, seed=args.seed, device=args.device,
        progress=not args.json or sys.stderr.isatty())
    if args.json:
        print(json.dumps(json_safe(summary)))
    else:
        print(f"stylized {summary['written']} images ({summary['skipped_existing']} already there) -> {summary['out']}")
    return 0
