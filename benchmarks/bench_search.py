"""Placement search: the prefix cache against the naive search, side by side in one run.

    python benchmarks/bench_search.py --shared ../shared [--model squeezenet1_1|tf_efficientnet_lite0]
        [--every 4] [--topk 0.1] [--threads 2]

Both evaluate the same settings (every eligible single layer at each K) on the
same images (every ``--every``-th cue-conflict stimulus and ImageNet sample
image, decoded once per batch for all settings) and must return identical
scores; the ratio of their model times is the speed-up of caching the dense
prefix. Decoding is the same in both and reported separately.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from topk_plugin.search import Setting, eligible_layers, evaluate_settings
from topk_plugin.shape_bias.dataset import CueConflictDataset
from topk_plugin.shape_bias.imagenet import ImageNetImages, eval_transform
from topk_plugin.zoo import create_model


def build(name: str, shared: Path):
    if name == "squeezenet1_1":
        return create_model("tv:squeezenet1_1", weights_path=shared / "weights" / "squeezenet1_1_imagenet_torchvision_norm.pth")
    return create_model(name, pretrained="offline")


def every_nth(model, shared: Path, every: int) -> tuple[CueConflictDataset, ImageNetImages]:
    """The cue-conflict stimuli and the ImageNet sample, each cut to every ``every``-th image."""
    cue = CueConflictDataset(shared / "data" / "cue-conflict")
    cue.items = cue.items[::every]
    imagenet = ImageNetImages(shared / "data" / "imagenet-sample", eval_transform(model))
    imagenet.items = imagenet.items[::every]
    return cue, imagenet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--model", default="squeezenet1_1")
    parser.add_argument("--every", type=int, default=4, help="use every N-th image of both sets")
    parser.add_argument("--topk", nargs="+", type=float, default=[0.1])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = build(args.model, args.shared).eval()
    cue, imagenet = every_nth(model, args.shared, args.every)
    layers = eligible_layers(model, torch.zeros(1, 3, 224, 224))
    settings = [Setting((layer,), k) for k in args.topk for layer in layers]
    print(f"{args.model}: {len(settings)} settings ({len(layers)} layers x {len(args.topk)} K), "
          f"{len(cue)} cue-conflict + {len(imagenet)} ImageNet images, {args.threads} threads")
    results = {}
    for cache in (False, True):
        start = time.perf_counter()
        dense, scores, timing = evaluate_settings(model, settings, cue, imagenet, cache=cache, workers=args.workers,
                                                  progress=False)
        results[cache] = (dense, scores, timing, time.perf_counter() - start)
    same = results[True][:2] == results[False][:2]
    naive, cached = results[False], results[True]
    print(f"{'search':<8} {'wall s':>8} {'model s':>8} {'data wait s':>11}")
    for label, r in (("naive", naive), ("cached", cached)):
        print(f"{label:<8} {r[3]:>8.1f} {r[2]['model']:>8.1f} {r[2]['data_wait']:>11.1f}")
    print(f"speed-up (model time): {naive[2]['model'] / cached[2]['model']:.2f}x; "
          f"(wall): {naive[3] / cached[3]:.2f}x; identical scores: {same}")


if __name__ == "__main__":
    main()
