"""Score a few placements side by side on images they were not chosen on, with paired intervals.

    python benchmarks/score_placements.py --shared ../shared --model tv:squeezenet1_1 \\
        --weights ../shared/weights/squeezenet1_1_imagenet_torchvision_norm.pth \\
        --placement topk=topk:0.2@features.7+features.10 \\
        --placement control=stats-norm:0.5@features.7+features.10 \\
        --placement both=topk:0.2@features.10,stats-norm:0.5@features.7 [--split holdout|even-odd]

A placement is ``NAME=PART[,PART...]``; a part is ``topk:K@LAYER+LAYER`` (Top-K, zero
fill), ``stats-norm:A@LAYER+LAYER`` (the control at strength A) or a placement spec
file (``.json``). Parts are applied to one fresh model in order, so ``both=...`` is a
combined setting; every stats-norm or shift layer is (re)calibrated with the earlier
ops active, on the calibration images only.

``--split holdout`` (default): the search's split (``--split-seed``): calibrate on the
search half's ImageNet images, score on the held-out half (cue-conflict and ImageNet).
``--split even-odd``: calibrate on the even-numbered files of the ImageNet sample, top-1
on the odd ones, shape bias on every cue-conflict stimulus (the issue's scratch split).

Prints shape bias and top-1 with 95% bootstrap intervals, each paired with dense and
with the first placement on the same images; ``--out`` writes them as JSON.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import topk_plugin
from topk_plugin._io import atomic_write_json, json_safe
from topk_plugin.calibrate import needs_calibration
from topk_plugin.search.holdout import holdout_split, subset
from topk_plugin.shape_bias.batches import model_normalization, stream_batches
from topk_plugin.shape_bias.dataset import CueConflictDataset
from topk_plugin.shape_bias.evaluate import evaluate_model
from topk_plugin.shape_bias.imagenet import ImageNetImages, eval_transform, evaluate_imagenet
from topk_plugin.shape_bias.intervals import cue_conflict_intervals, format_field, top1_intervals


def apply(model, part: str) -> None:
    """One part of a placement onto ``model`` (see the module doc); constants are dropped, to be calibrated."""
    if part.endswith(".json"):
        spec = topk_plugin.load_placement(Path(part))
        kwargs = spec.sparsify_kwargs()
        for value in kwargs["layers"].values():
            if isinstance(value, dict):
                for key in ("mean", "std", "shift"):
                    value.pop(key, None)
        topk_plugin.sparsify(model, **kwargs)
        return
    op, _, rest = part.partition(":")
    value, _, layers = rest.partition("@")
    layers = layers.split("+")
    if op == "topk":
        topk_plugin.sparsify(model, layers, float(value))
    elif op == "stats-norm":
        topk_plugin.sparsify(model, layers, op="stats-norm", strength=float(value))
    else:
        raise SystemExit(f"unknown op {op!r} in {part!r}: use topk:K@L1+L2, stats-norm:A@L1+L2 or a .json spec")


def even_odd(imagenet: ImageNetImages):
    """(even-numbered files, odd-numbered files) by position in the sorted sample."""
    return subset(imagenet, list(range(0, len(imagenet), 2))), subset(imagenet, list(range(1, len(imagenet), 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--model", default="tv:squeezenet1_1")
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--placement", action="append", required=True, metavar="NAME=PARTS")
    parser.add_argument("--split", choices=("holdout", "even-odd"), default="holdout")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    def fresh():
        if args.weights:
            return topk_plugin.create_model(args.model, weights_path=args.weights).eval()
        return topk_plugin.create_model(args.model, pretrained="offline").eval()

    dense = fresh()
    cue = CueConflictDataset(args.shared / "data" / "cue-conflict")
    imagenet = ImageNetImages(args.shared / "data" / "imagenet-sample", eval_transform(dense))
    if args.split == "holdout":
        (_, calibration), (cue, imagenet) = holdout_split(cue, imagenet, seed=args.split_seed)
    else:
        calibration, imagenet = even_odd(imagenet)
    mean, std = model_normalization(dense)
    batches = [x for x, _, _ in stream_batches(calibration, batch_size=args.batch_size, workers=args.workers,
                                               device="cpu", mean=mean, std=std)]
    kw = dict(batch_size=args.batch_size, workers=args.workers, progress=False)
    models = {"dense": dense}
    for entry in args.placement:
        name, _, parts = entry.partition("=")
        model = fresh()
        for part in parts.split(","):
            apply(model, part)
        if any(needs_calibration(op) for op in topk_plugin.sparsified_layers(model).values()):
            topk_plugin.calibrate(model, batches)
        models[name] = model
    scores = {}
    for name, model in models.items():
        tick = time.perf_counter()
        evaluation = evaluate_model(model, cue, name=name, **kw)
        hits = evaluate_imagenet(model, imagenet, name=name, **kw).correct
        scores[name] = (evaluation, [t.decision for t in evaluation.trials], hits, time.perf_counter() - tick)
    labels = cue.label_pairs()
    first = next(n for n in models if n != "dense")
    rows = {}
    print(f"split: {args.split}; {len(cue)} cue-conflict, {len(imagenet)} ImageNet images scored, "
          f"{len(calibration)} ImageNet images for calibration")
    for name, (evaluation, decisions, hits, seconds) in scores.items():
        row = {"shape_bias": evaluation.result.shape_bias, "shape_or_texture": evaluation.result.shape_or_texture,
               "imagenet_top1": sum(hits) / len(hits), "seconds": seconds,
               **cue_conflict_intervals(decisions, labels, seed=0), **top1_intervals(hits, seed=0)}
        for ref, key in (("dense", "vs_dense"), (first, f"vs_{first}")):
            if name != ref:
                paired = {**cue_conflict_intervals(decisions, labels, scores[ref][1], seed=0),
                          **top1_intervals(hits, scores[ref][2], seed=0)}
                row[key] = {k: v for k, v in paired.items() if k.startswith("delta_")}
        rows[name] = row
        print(f"{name:<10} shape bias {format_field(row, 'shape_bias')} (shape or texture {row['shape_or_texture']:.3f}), "
              f"top-1 {format_field(row, 'imagenet_top1')}"
              + "".join(f"; {key}: {format_field(row[key], 'delta_shape_bias')} / "
                        f"{format_field(row[key], 'delta_top1')}" for key in ("vs_dense", f"vs_{first}") if key in row))
    if args.out:
        atomic_write_json(args.out, json_safe({"split": args.split, "placements": args.placement, "rows": rows}))


if __name__ == "__main__":
    main()
