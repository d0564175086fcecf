"""What the bootstrap intervals of one search row cost: shape bias, shape-or-texture, top-1 and both paired differences.

    python benchmarks/bench_intervals.py [--repeats 10] [--imagenet 1000]

Synthetic decisions on the 1280 cue-conflict labels and ``--imagenet`` top-1 hits
(the cost depends on the counts, not the values); the first call draws and caches
the index matrices and is not timed. Also the peak memory of one paired top-1
interval over 50,000 images (ImageNet's validation set), by tracemalloc.
"""
from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
import torch

from topk_plugin.kernel.cpu import describe
from topk_plugin.shape_bias.categories import CATEGORIES
from topk_plugin.shape_bias.intervals import cue_conflict_intervals, top1_intervals
from topk_plugin.stats import paired_difference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--imagenet", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    cats = list(CATEGORIES)
    labels = [(cats[i % 16], cats[(i // 16 + i) % 16]) for i in range(1280)]
    ours, dense = ([cats[j] for j in rng.integers(0, 16, 1280)] for _ in range(2))
    hits, dense_hits = rng.random(args.imagenet) < 0.6, rng.random(args.imagenet) < 0.6
    cue_conflict_intervals(ours, labels, dense), top1_intervals(hits, dense_hits)  # draws the indices
    start = time.perf_counter()
    for _ in range(args.repeats):
        row = {**cue_conflict_intervals(ours, labels, dense), **top1_intervals(hits, dense_hits)}
    per_row = (time.perf_counter() - start) / args.repeats
    big, big_dense = rng.random(50_000) < 0.7, rng.random(50_000) < 0.75
    tracemalloc.start()
    start = time.perf_counter()
    paired_difference(big, big_dense)
    big_seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"cpu: {describe()}; numpy {np.__version__}; torch threads {torch.get_num_threads()}")
    print(f"one search row (1280 cue-conflict + {args.imagenet} ImageNet images): {per_row * 1e3:.0f} ms; "
          f"shape bias CI {row['shape_bias_ci']}, paired top-1 CI {row['delta_top1_ci']}")
    print(f"paired top-1 difference over 50,000 images: {big_seconds:.1f} s, peak memory {peak / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
