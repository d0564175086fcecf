"""Spatial Top-K speed: ours vs the portable build, the PyTorch path, the authors' code and relu.

    python benchmarks/bench_topk.py [--threads 2] [--repeats 7] [--no-models]
    python benchmarks/bench_topk.py --march x86-64-v3   # also time the AVX2 code (on AVX-512 CPUs)
    python benchmarks/bench_topk.py --short-rows        # short rows: vector lanes vs the portable build
    python benchmarks/bench_topk.py --widths            # the vector code at 16/32/64 bytes vs plain C

The header names the CPU model, its vector ISA and flags, both kernel builds and the
path the automatic backend chose for each row class (``topk_plugin.kernel_status()``).
All timings are medians of ``--repeats`` runs after warm-up, same thread count, same
input tensor, for two input kinds: post-ReLU (``randn(shape).relu()``) and signed
(``randn(shape)``: BN outputs, GAN features). Calls are interleaved so load changes on
the machine hit all columns alike, in an order shuffled (seeded) between repeats: a
call right after another's large allocations can pay page faults for them, which in a
fixed order added 0.2 ms to one column on (16,512,7,7).

* ``auto``: ``topk_plugin.functional.spatial_topk(x, k)`` (inference, no grad), the
  default backend: the path measured fastest for the row class on this machine.
* ``native``: the same forced onto the ``-march=native`` vector build; ``march=X``
  (with ``--march X``) onto a build for that target.
* ``portable``: the same forced onto the ``-DTOPK_PORTABLE`` build (plain C).
* ``torch``: the pure-PyTorch backend (``TOPK_PLUGIN_BACKEND=torch``).
* ``authors``: ``topk`` on ``|x|`` of the flattened rows, scatter a mask, multiply.
* ``relu``: ``torch.relu(x)`` allocating its output, i.e. one read and one write of
  the tensor plus the allocation.

Ratio columns: ``best/auto`` = min(portable, torch) / auto (goal >= 0.95),
``authors/auto`` (goal >= 3), ``authors/X`` for the ``--march`` build.

Model level: torchvision AlexNet / VGG16 / ResNet-18 with random init, batch 16,
224 px, dense vs ``topk_plugin.sparsify`` at the paper's placements; SqueezeNet 1.1
(batch 32) at the README search's best placement, also with the 64-byte vector build
that every CPU got before issue 13.
"""
from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

import topk_plugin
from topk_plugin import kernel
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
    order, shuffle = list(fns), random.Random(0).shuffle
    for _ in range(repeats):
        shuffle(order)  # a call right after another's large allocations can pay their page faults
        for name in order:
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def with_library(target):
    """``spatial_topk(x, k)`` pinned to one build (a kernel library) or to ``"torch"``, whatever the backend."""

    def run(x, k):
        with kernel.dispatch.kernel_library(target):
            return spatial_topk(x, k)

    return run


torch_path = with_library("torch")


def op_table(repeats: int, march: str | None) -> None:
    candidates = {"native": with_library(kernel.build.library("native")),
                  "portable": with_library(kernel.build.portable_library())}
    if march:
        extra = kernel.build.build(march=march)
        if extra.lib is None:
            raise SystemExit(f"--march {march}: {extra.status}")
        print(f"march={march} build: {extra.status}")
        candidates[f"march={march}"] = with_library(extra.lib)
    names = ["auto", *candidates, "torch", "authors", "relu"]
    ratios = ["best/auto", "authors/auto"] + ([f"authors/{march}"] if march else [])
    print(f"\n{'shape':<20} {'input':<6} {'K':>5} " + " ".join(f"{n[:12]:>12}" for n in names)
          + " " + " ".join(f"{r[:15]:>15}" for r in ratios) + "   (ms; ratios: higher is better for auto)")
    worst = {r: float("inf") for r in ratios}
    for shape in SHAPES:
        signed = torch.randn(shape, generator=torch.Generator().manual_seed(0))
        for kind, x in (("relu", signed.relu()), ("signed", signed)):
            for k in KS:
                fns = {"relu": lambda x=x: torch.relu(x), "auto": lambda x=x, k=k: spatial_topk(x, k)}
                fns.update({name: (lambda x=x, k=k, fn=fn: fn(x, k)) for name, fn in candidates.items()})
                fns["torch"] = lambda x=x, k=k: torch_path(x, k)
                fns["authors"] = lambda x=x, k=k: authors_topk(x, k)
                t = interleaved(fns, repeats)
                row = {"best/auto": min(t["portable"], t["torch"]) / t["auto"], "authors/auto": t["authors"] / t["auto"]}
                if march:
                    row[f"authors/{march}"] = t["authors"] / t[f"march={march}"]
                for r, v in row.items():
                    worst[r] = min(worst[r], v)
                print(f"{str(shape):<20} {kind:<6} {k:>5} " + " ".join(f"{t[n] * 1e3:>12.3f}" for n in names)
                      + " " + " ".join(f"{row[r]:>15.2f}" for r in ratios), flush=True)
    print("worst cells: " + ", ".join(f"{r} {v:.2f}" for r, v in worst.items()))


def short_rows_table(repeats: int) -> None:
    """Short rows: the native build (vector lanes) vs the -DTOPK_PORTABLE build (row by row)."""
    native = with_library(kernel.build.library("native"))
    portable = with_library(kernel.build.portable_library())
    print("\nshort rows: native build vs -DTOPK_PORTABLE build (ms, spatial_topk, inference)")
    print(f"{'shape':<20} {'dtype':<8} {'layout':<14} {'K':>5} {'native':>9} {'portable':>9} {'ratio':>6}")
    for shape in [(16, 512, 7, 7), (16, 256, 12, 12), (16, 256, 14, 14), (16, 256, 16, 16)]:
        for dtype in (torch.float32, torch.float16):
            base = torch.randn(shape, generator=torch.Generator().manual_seed(0)).relu().to(dtype)
            for layout, fmt in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
                x = base.contiguous(memory_format=fmt)
                for k in (0.1, 0.5):
                    t = interleaved({"native": lambda x=x, k=k: native(x, k), "portable": lambda x=x, k=k: portable(x, k)},
                                    repeats)
                    print(f"{str(shape):<20} {str(dtype)[6:]:<8} {layout:<14} {k:>5} {t['native'] * 1e3:>9.3f} "
                          f"{t['portable'] * 1e3:>9.3f} {t['portable'] / t['native']:>6.2f}", flush=True)


def widths_table(repeats: int) -> None:
    """The vector-extension code at every width (-DTOPK_VBYTES) against plain C, on this CPU:
    a width above the hardware's is split into several registers by the compiler."""
    builds = {f"{w} B": kernel.build.build(defines=(f"-DTOPK_VBYTES={w}",)) for w in (16, 32, 64)}
    builds["plain C"] = kernel.build.build("portable")
    runs = {name: with_library(b.lib) for name, b in builds.items() if b.lib is not None}
    native = kernel.build.build("native").vector_bytes
    print(f"\nvector widths: -DTOPK_VBYTES builds vs plain C (ms, spatial_topk, inference; native picks {native} B)")
    print(f"{'shape':<20} {'input':<6} {'K':>5} " + " ".join(f"{n:>9}" for n in runs))
    for shape in SHAPES[:3]:
        signed = torch.randn(shape, generator=torch.Generator().manual_seed(0))
        for kind, x in (("relu", signed.relu()), ("signed", signed)):
            for k in (0.1, 0.5):
                t = interleaved({n: (lambda x=x, k=k, fn=fn: fn(x, k)) for n, fn in runs.items()}, repeats)
                print(f"{str(shape):<20} {kind:<6} {k:>5} " + " ".join(f"{t[n] * 1e3:>9.3f}" for n in runs), flush=True)


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
            t = interleaved({"dense": lambda m=dense: m(x), "sparse": lambda m=sparse: m(x)}, repeats)
        print(f"{name:<9} inference  dense {t['dense'] * 1e3:8.1f} ms  sparse {t['sparse'] * 1e3:8.1f} ms  "
              f"overhead {100 * (t['sparse'] / t['dense'] - 1):+.1f}%", flush=True)
    # the README's placement search: SqueezeNet 1.1 with its best placement, against the kernel
    # as it was before issue 13 (64-byte vector code whatever the CPU) in the same run
    torch.manual_seed(0)
    dense = torchvision.models.squeezenet1_1().eval()
    sparse = topk_plugin.sparsify(copy.deepcopy(dense), ["features.7", "features.10"], 0.2).eval()
    x32 = torch.randn(32, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    old = kernel.build.build(defines=("-DTOPK_VBYTES=64",)).lib

    def sparse_old():
        with kernel.dispatch.kernel_library(old):
            return sparse(x32)

    with torch.no_grad():
        t = interleaved({"dense": lambda: dense(x32), "sparse": lambda: sparse(x32), "old": sparse_old}, repeats)
    print(f"{'squeezenet1_1':<9} inference (batch 32, features.7+features.10 at 20%)  dense {t['dense'] * 1e3:.1f} ms  "
          f"sparse {t['sparse'] * 1e3:.1f} ms ({100 * (t['sparse'] / t['dense'] - 1):+.1f}%)  "
          f"with the 64-byte build {t['old'] * 1e3:.1f} ms ({100 * (t['old'] / t['dense'] - 1):+.1f}%)", flush=True)
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
    parser.add_argument("--march", default=None,
                        help="also time a build for this -march target (x86-64-v3: the AVX2 code)")
    parser.add_argument("--widths", action="store_true",
                        help="only the vector-width table: -DTOPK_VBYTES=16/32/64 builds vs plain C")
    parser.add_argument("--short-rows", action="store_true",
                        help="only the short-row table: default build vs the -DTOPK_PORTABLE build")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(topk_plugin.kernel_status())
    print(f"cpu flags: {' '.join(sorted(kernel.cpu.cpu_flags()))}")
    if args.short_rows:
        short_rows_table(args.repeats)
        return
    if args.widths:
        widths_table(args.repeats)
        return
    op_table(args.repeats, args.march)
    if not args.no_models:
        model_overheads(args.repeats)


if __name__ == "__main__":
    main()
