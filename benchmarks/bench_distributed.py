"""Wall time of the SqueezeNet shape-bias run in 1 process and under torchrun with N processes.

    python benchmarks/bench_distributed.py --shared ../shared [--nproc 1 2] [--threads 2]

Runs ``topk-plugin shape-bias`` (dense and Top-K 10%, 1280 cue-conflict stimuli plus the
ImageNet sample's top-1) as a user would, once per process count, side by side in one run,
and prints per run: wall time, the evaluators' own seconds (image work), the fixed rest
(start-up, model load, gathering, intervals, writing) and the images per second per
process. It checks that every run's results equal the first's. From the 1-process run it
prints a model of how the wall time falls with N processes on N devices:
``T(N) = fixed + work / N``. Slow: a few minutes per run; not a test.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from topk_plugin.kernel.cpu import cpu_model, vector_isa


def run(nproc: int, threads: int, shared: Path, out: Path) -> tuple[float, dict]:
    args = ["shape-bias", "--model", "tv:squeezenet1_1",
            "--weights", str(shared / "weights" / "squeezenet1_1_imagenet_torchvision_norm.pth"),
            "--data", str(shared / "data" / "cue-conflict"), "--imagenet", str(shared / "data" / "imagenet-sample"),
            "--topk", "0", "0.1", "--out", str(out), "--json"]
    launcher = [sys.executable, "-m", "topk_plugin"] if nproc == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
        "-m", "topk_plugin"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    done = subprocess.run([*launcher, *args], capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{nproc} process(es) failed:\n{done.stderr[-3000:]}")
    return wall, json.loads(done.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=None,
                        help="threads per process (default: the cores divided by the processes)")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"CPU: {cpu_model()} ({vector_isa()}), {cores} cores, torch {torch.__version__}")
    print(f"{'processes':>9} {'threads/proc':>12} {'wall s':>8} {'image work s':>12} {'fixed s':>8} "
          f"{'img/s/proc':>10} {'same results':>12}")
    n_imagenet = sum(1 for p in (args.shared / "data" / "imagenet-sample").iterdir() if p.is_file())
    first = None
    for nproc in args.nproc:
        threads = args.threads or max(1, cores // nproc)
        with tempfile.TemporaryDirectory() as out:
            wall, summary = run(nproc, threads, args.shared, Path(out))
        rows = summary["results"]
        work = sum(r["seconds"] for r in rows)  # per setting: the cue-conflict and the top-1 evaluation
        images = sum(r["n_images"] for r in rows) + n_imagenet * len(rows)  # cue-conflict + ImageNet sample
        scores = [{k: r[k] for k in ("shape_bias", "shape_bias_ci", "imagenet_top1", "imagenet_top1_ci")} for r in rows]
        first = first or (wall, work, scores)
        print(f"{nproc:>9} {threads:>12} {wall:>8.1f} {work:>12.1f} {wall - work:>8.1f} "
              f"{images / work / nproc:>10.1f} {str(scores == first[2]):>12}")
    wall1, work1, _ = first
    fixed = wall1 - work1
    print(f"\nmodel from the 1-process run: T(N) = {fixed:.0f} s fixed + {work1:.0f} s / N "
          f"(N processes on N devices of this speed)")
    for n in (1, 2, 4, 8):
        print(f"  N={n}: {fixed + work1 / n:.0f} s")


if __name__ == "__main__":
    main()
