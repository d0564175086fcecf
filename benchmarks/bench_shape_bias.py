"""Seconds for one full cue-conflict evaluation (1280 images), split into decode and model time.

    python benchmarks/bench_shape_bias.py --shared ../shared [--threads 2] [--workers 2]

Three numbers per model, from one run each:
  total     wall time of evaluate_model (workers decode while the model runs);
  model     time inside the model loop (normalise, forward, decisions);
  decode    a separate pass that only decodes all 1280 PNGs with the same workers,
            i.e. what decoding alone costs (mostly hidden behind the model).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from topk_plugin.shape_bias.batches import single_thread_worker
from topk_plugin.shape_bias.dataset import CueConflictDataset, stack
from topk_plugin.shape_bias.evaluate import evaluate_model


def models(shared: Path):
    import torchvision

    squeeze = torchvision.models.squeezenet1_1()
    squeeze.load_state_dict(torch.load(shared / "weights" / "squeezenet1_1_imagenet_torchvision_norm.pth"))
    yield "squeezenet1_1", squeeze
    try:
        from topk_plugin import create_model

        yield "tf_efficientnet_lite0", create_model("tf_efficientnet_lite0", pretrained="offline")
    except Exception as err:  # weights package missing: say so, keep going
        print(f"tf_efficientnet_lite0 skipped: {err}")


def decode_only(dataset, workers: int, batch_size: int) -> float:
    start = time.perf_counter()
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=stack,
                        worker_init_fn=single_thread_worker if workers else None)
    for _ in loader:
        pass
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = CueConflictDataset(args.shared / "data" / "cue-conflict")
    decode = decode_only(dataset, args.workers, args.batch_size)
    print(f"threads={args.threads} workers={args.workers} batch={args.batch_size}")
    print(f"{'model':<24} {'total s':>8} {'model s':>8} {'decode-only s':>14} {'shape bias':>10}")
    for name, model in models(args.shared):
        ev = evaluate_model(model.eval(), dataset, name=name, batch_size=args.batch_size, workers=args.workers, progress=False)
        print(f"{name:<24} {ev.seconds:>8.1f} {ev.model_seconds:>8.1f} {decode:>14.1f} {ev.result.shape_bias:>10.4f}")


if __name__ == "__main__":
    main()
