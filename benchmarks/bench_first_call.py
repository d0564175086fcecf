"""What the first CPU forward of a process costs on a new machine: compiling the kernel and timing its paths.

Runs, each in a fresh process with an empty kernel cache (``TOPK_PLUGIN_CACHE`` in a
temporary folder), the first forward of a float32 SqueezeNet 1.1 with Top-K (random
weights; the cost does not depend on them), then the same forward in a second
process that finds the cache. Prints the CPU, the load average before each run, and
the wall time of each phase as the notices on stderr report them.

    python benchmarks/bench_first_call.py [--runs 3] [--threads N]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import sys, time, torch
t0 = time.perf_counter()
import torchvision, topk_plugin
model = topk_plugin.sparsify(torchvision.models.squeezenet1_1().eval(), ["features.3", "features.12"], 0.1)
x = torch.randn(8, 3, 224, 224)
t1 = time.perf_counter()
with torch.no_grad():
    model(x)
t2 = time.perf_counter()
with torch.no_grad():
    model(x)
t3 = time.perf_counter()
print(f"{t1 - t0:.2f} {t2 - t1:.2f} {t3 - t2:.2f}")
"""


def run(cache: str, threads: int | None) -> tuple[list[float], list[str]]:
    env = {**os.environ, "TOPK_PLUGIN_CACHE": cache}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, check=True)
    wall = time.perf_counter() - start
    setup, first, second = map(float, proc.stdout.split())
    return [wall, setup, first, second], [line for line in proc.stderr.splitlines() if line.startswith("topk-plugin:")]


def main() -> None:
    from topk_plugin.kernel.cpu import describe

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    print(f"cpu: {describe()}; {os.cpu_count()} logical cores; threads: {args.threads or 'torch default'}")
    print(f"{'run':<5} {'load':>5} {'cache':<6} {'process s':>9} {'import+build model s':>21} {'1st forward s':>13}"
          f" {'2nd forward s':>13}  notices")
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as cache:
            for kind in ("empty", "warm"):
                load = os.getloadavg()[0]
                (wall, setup, first, second), notices = run(cache, args.threads)
                print(f"{i:<5} {load:>5.2f} {kind:<6} {wall:>9.2f} {setup:>21.2f} {first:>13.2f} {second:>13.2f}  "
                      f"{len(notices)}")


if __name__ == "__main__":
    main()
