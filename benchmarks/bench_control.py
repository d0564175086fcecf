"""The stats-norm control against Top-K, side by side in one process: the op alone and a search's setting.

    python benchmarks/bench_control.py --shared ../shared [--model squeezenet1_1|tf_efficientnet_lite0]
        [--every 8] [--topk 0.2] [--strength 0.35] [--rounds 2] [--threads 2]

1. The op alone on each candidate layer's activation (a batch of 32 dense
   activations of real images): Top-K (``spatial_topk``, the measured CPU path)
   and ``channel_stats_norm``, alternated, median of 5 calls each.
2. A search's cost per setting: ``evaluate_settings`` (prefix cache, as the
   search runs it) on every candidate layer with Top-K at ``--topk`` and with the
   control at ``--strength`` (calibrated first, not timed), on every ``--every``-th
   image of both sets; the two families alternate for ``--rounds`` rounds so load
   on a shared machine hits both alike. Model time only (decoding is the same).
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from bench_search import build, every_nth  # the same models and image subsets as the prefix-cache benchmark

from topk_plugin import channel_stats_norm, spatial_topk
from topk_plugin.layers import forward_with_hooks
from topk_plugin.search import Setting, eligible_layers, evaluate_settings
from topk_plugin.search.calibration import calibrate_settings
from topk_plugin.shape_bias.batches import model_normalization, stream_batches


def _median_ms(fn, calls: int = 5) -> float:
    fn()
    times = []
    for _ in range(calls):
        tick = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tick)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--model", default="squeezenet1_1")
    parser.add_argument("--every", type=int, default=8, help="use every N-th image of both sets")
    parser.add_argument("--topk", type=float, default=0.2)
    parser.add_argument("--strength", type=float, default=0.35)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = build(args.model, args.shared).eval()
    cue, imagenet = every_nth(model, args.shared, args.every)
    layers = eligible_layers(model, torch.zeros(1, 3, 224, 224))
    mean, std = model_normalization(model)
    batches = [x for x, _, _ in stream_batches(imagenet, batch_size=32, workers=0, device="cpu", mean=mean, std=std)]
    topk = [Setting((layer,), args.topk) for layer in layers]
    control = [Setting((layer,), op="stats-norm", strength=args.strength) for layer in layers]
    with torch.no_grad():
        constants = calibrate_settings(model, control, batches)
    print(f"{args.model}: {len(layers)} layers, {len(cue)} cue-conflict + {len(imagenet)} ImageNet images, "
          f"{args.threads} threads")

    # 1. the op alone, on real activations
    activations = {}
    forward_with_hooks(model, batches[0], {n: m for n, m in model.named_modules() if n in layers},
                       lambda name, out: activations.setdefault(name, out.clone()))
    print(f"\n{'layer':<12} {'shape':<22} {'Top-K ms':>9} {'control ms':>10} {'ratio':>6}")
    ratios = []
    for s in control:
        layer = s.layers[0]
        x = activations[layer]
        c = constants[s][layer]
        m, d = torch.tensor(c["mean"]), torch.tensor(c["std"])
        with torch.no_grad():
            t_topk = _median_ms(lambda x=x: spatial_topk(x, args.topk))
            t_ctrl = _median_ms(lambda x=x, m=m, d=d: channel_stats_norm(x, args.strength, mean=m, std=d))
        ratios.append(t_ctrl / t_topk)
        print(f"{layer:<12} {str(tuple(x.shape)):<22} {t_topk:>9.2f} {t_ctrl:>10.2f} {t_ctrl / t_topk:>6.2f}")
    print(f"op alone, control / Top-K: median {statistics.median(ratios):.2f}x")

    # 2. a search's cost per setting
    model_s = {"topk": [], "stats-norm": []}
    for _ in range(args.rounds):
        for family, settings in (("topk", topk), ("stats-norm", control)):
            _, _, timing = evaluate_settings(model, settings, cue, imagenet, dense=False, workers=args.workers,
                                             progress=False, calibration=constants)
            model_s[family].append(timing["model"] / len(settings))
    t, c = statistics.median(model_s["topk"]), statistics.median(model_s["stats-norm"])
    print(f"\nper setting (model s, median of {args.rounds} rounds): Top-K {t:.2f}, control {c:.2f}, "
          f"control / Top-K {c / t:.2f}x  (rounds: Top-K {[round(v, 2) for v in model_s['topk']]}, "
          f"control {[round(v, 2) for v in model_s['stats-norm']]})")


if __name__ == "__main__":
    main()
