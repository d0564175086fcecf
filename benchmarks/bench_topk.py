"""Spatial Top-K speed: ours vs the authors' formulation vs one elementwise pass (relu).

    python benchmarks/bench_topk.py [--threads 2] [--repeats 15] [--no-models]
    python benchmarks/bench_topk.py --short-rows   # short rows: vector lanes vs the portable build

All timings are medians of ``--repeats`` runs after warm-up, same thread count,
same input tensor (float32, post-ReLU: ``randn(shape).relu()``). Calls are
interleaved (relu, ours, authors', relu, ...) so load changes on the machine hit
all three alike.

* ``relu``: ``torch.relu(x)`` allocating its output, i.e. one read and one write
  of the tensor plus the allocation (for tensors above glibc's mmap threshold
  that includes first-touch page faults of the new output, which Top-K pays too).
* ``ours``: ``topk_plugin.functional.spatial_topk(x, k)`` (inference, no grad).
* ``ours-torch``: the same with the pure-PyTorch backend (``TOPK_PLUGIN_BACKEND=torch``).
* ``authors``: ``topk`` on ``|x|`` of the flattened rows, scatter a mask, multiply.

Model level: torchvision AlexNet / VGG16 / ResNet-18 with random init, batch 16,
224 px, dense vs ``topk_plugin.sparsify`` at the paper's placements.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from topk_plugin import _select_build, _select_ops
from topk_plugin.functional import spatial_topk

SHAPES = [(16, 64, 56, 56), (16, 256, 28, 28), (16, 512, 7, 7), (8, 128, 112, 112)]
KS = [0.05, 0.1, 0.2, 0.5]


def authors_topk(x: torch.Tensor, k: float) -> torch.Tensor:
    n, c, h, w = x.shape
    kk = max(1, int(k * h * w))
    flat = x.reshape(n, c, h * w)
    idx = flat.abs().topk(kk, dim=2).indices
    mask = torch.zeros_like(flat).scatter_(2, idx, 1.0)
    return (flat * mask).reshape(n, c, h, w)


def interleaved(fns: dict, repeats: int) -> dict:
    for fn in fns.values():  # warm-up
        fn()
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def op_table(repeats: int) -> None:
    print(f"{'shape':<20} {'K':>5} {'ours ms':>9} {'torch-path':>10} {'authors':>9} {'relu':>8} "
          f"{'ours/relu':>9} {'authors/ours':>12} {'torch-path/ours':>15}")
    for shape in SHAPES:
        x = torch.randn(shape, generator=torch.Generator().manual_seed(0)).relu()
        for k in KS:
            def torch_path(x=x, k=k):
                with _select_ops.backend("torch"):
                    return spatial_topk(x, k)

            t = interleaved(
                {
                    "relu": lambda: torch.relu(x),
                    "ours": lambda: spatial_topk(x, k),
                    "authors": lambda: authors_topk(x, k),
                    "torch": torch_path,
                },
                repeats,
            )
            print(f"{str(shape):<20} {k:>5} {t['ours'] * 1e3:>9.3f} {t['torch'] * 1e3:>10.2f} "
                  f"{t['authors'] * 1e3:>9.2f} {t['relu'] * 1e3:>8.3f} {t['ours'] / t['relu']:>9.1f} "
                  f"{t['authors'] / t['ours']:>12.1f} {t['torch'] / t['ours']:>15.1f}", flush=True)


def short_rows_table(repeats: int) -> None:
    """Short rows: the default build (vector lanes) vs the -DTOPK_PORTABLE build (row by row)."""
    portable = _select_build.portable_library()
    print("\nshort rows: default build vs -DTOPK_PORTABLE build (ms, spatial_topk, inference)")
    print(f"{'shape':<20} {'dtype':<8} {'layout':<14} {'K':>5} {'default':>9} {'portable':>9} {'ratio':>6}")
    for shape in [(16, 512, 7, 7), (16, 256, 12, 12), (16, 256, 14, 14), (16, 256, 16, 16)]:
        for dtype in (torch.float32, torch.float16):
            base = torch.randn(shape, generator=torch.Generator().manual_seed(0)).relu().to(dtype)
            for layout, fmt in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
                x = base.contiguous(memory_format=fmt)
                for k in (0.1, 0.5):
                    def with_portable(x=x, k=k):
                        with _select_ops.kernel_library(portable):
                            return spatial_topk(x, k)

                    t = interleaved({"default": lambda: spatial_topk(x, k), "portable": with_portable}, repeats)
                    print(f"{str(shape):<20} {str(dtype)[6:]:<8} {layout:<14} {k:>5} {t['default'] * 1e3:>9.3f} "
                          f"{t['portable'] * 1e3:>9.3f} {t['portable'] / t['default']:>6.2f}", flush=True)


def model_overheads(repeats: int) -> None:
    import copy

    import torchvision

    import topk_plugin

    x = torch.randn(16, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    print("\nmodel-level overhead (batch 16, 224 px, random init)")
    for name, layers, k in (
        ("alexnet", ["features.2", "features.5", "features.7", "features.9", "features.12"], 0.1),
        ("vgg16", ["features.4", "features.9", "features.16", "features.23", "features.30"], 0.05),
    ):
        torch.manual_seed(0)
        dense = getattr(torchvision.models, name)().eval()
        sparse = topk_plugin.sparsify(copy.deepcopy(dense), layers, k).eval()
        with torch.no_grad():
            t = interleaved({"dense": lambda: dense(x), "sparse": lambda: sparse(x)}, repeats)
        print(f"{name:<9} inference  dense {t['dense'] * 1e3:8.1f} ms  sparse {t['sparse'] * 1e3:8.1f} ms  "
              f"overhead {100 * (t['sparse'] / t['dense'] - 1):+.1f}%", flush=True)
    torch.manual_seed(0)
    dense = torchvision.models.resnet18(num_classes=10).train()
    sparse = topk_plugin.sparsify(copy.deepcopy(dense), ["layer2"], 0.2).train()
    target = torch.randint(0, 10, (16,), generator=torch.Generator().manual_seed(1))

    def step(model, opt):
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), target).backward()
        opt.step()

    opt_d = torch.optim.SGD(dense.parameters(), lr=0.01, momentum=0.9)
    opt_s = torch.optim.SGD(sparse.parameters(), lr=0.01, momentum=0.9)
    t = interleaved({"dense": lambda: step(dense, opt_d), "sparse": lambda: step(sparse, opt_s)}, max(3, repeats // 3))
    print(f"{'resnet18':<9} train step dense {t['dense'] * 1e3:8.1f} ms  sparse {t['sparse'] * 1e3:8.1f} ms  "
          f"overhead {100 * (t['sparse'] / t['dense'] - 1):+.1f}%", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--no-models", action="store_true")
    parser.add_argument("--short-rows", action="store_true",
                        help="only the short-row table: default build vs the -DTOPK_PORTABLE build")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, backend {_select_ops.get_backend()}, "
          f"kernel: {_select_build.status()}")
    if args.short_rows:
        short_rows_table(args.repeats)
        return
    op_table(args.repeats)
    if not args.no_models:
        model_overheads(args.repeats)


if __name__ == "__main__":
    main()
