"""Measuring the paper's claim: Top-K responses carry structure, the rest texture (Figs. 2-3).

Why: ``reconstruct`` and ``texture_synthesis`` show the claim on one image;
whether it holds on a backbone is a question about many images. For every
backbone and image this runs

* reconstruction from all (``identity``), the Top-K (``topk``) and the
  non-Top-K (``non_topk``) responses, and
* texture synthesis from all responses (``all``), with the Top-K removed
  (``without_topk``) and from the Top-K only (``topk_only``),

at each K (``identity`` and ``all`` do not depend on K and run once per
image), each condition from the same seeded noise and until its loss stops
improving (``convergence.StopRule``), and records per image and condition the
four scores of :mod:`.scores`, the evaluations used and whether the
optimisation converged. ``claim_report`` turns the rows into means with
bootstrap intervals, paired differences and the verdict.

Why batches: the 14 optimisations of an image (and of ``images_per_batch``
images) run as one batch of per-row Adam (``objectives``, ``optimize``), which
is each optimisation alone, computed together; the target's features are
computed once per image for all its conditions and K.

Rows are checkpointed atomically after every batch (``claim.checkpoint.json``),
so an interrupted run resumes with ``resume=True`` and gives the same rows.
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .._io import atomic_write_json, check_same_settings, checkpoint_error, read_json_checkpoint
from .backbones import load_backbone
from .common import prepare_image
from .convergence import StopRule
from .devices import analysis_device
from .features import FeatureExtractor, default_layers, frozen
from .images import save_png
from .objectives import BatchObjective, Task
from .optimize import DEFAULT_LR, OPTIMIZERS, optimize_tasks
from .scores import image_scores

__all__ = ["ClaimImage", "ClaimConfig", "claim_images", "run_claim", "example_path", "PHOTOS", "SCORES", "ANALYSES"]

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
SCORES = ("ssim", "edge_correlation", "gram_distance", "color_histogram_distance")
# analysis: (condition independent of K, Top-K condition, non-Top-K condition)
ANALYSES = {
    "reconstruct": ("identity", "topk", "non_topk"),
    "texture-synthesis": ("all", "topk_only", "without_topk"),
}
CHECKPOINT_FORMAT = "topk-plugin.claim-checkpoint"


@dataclass(frozen=True)
class ClaimImage:
    """One target: ``name`` (unique), where it comes from, and a path or an HxWx3 array."""

    name: str
    source: str
    image: object = field(compare=False, repr=False)


@dataclass(frozen=True)
class ClaimConfig:
    """What a run measures; a resumed run must use the same values.

    ``backbones`` are ``(name, weights)`` pairs (``weights`` as in ``load_backbone``).
    """

    backbones: tuple
    ks: tuple = (0.05, 0.1, 0.2)
    size: int = 128
    optimizer: str = "adam"
    lr: float | None = None  # None: optimize.DEFAULT_LR of the optimizer
    tol: float = StopRule.tol
    window: int = StopRule.window
    max_evals: int = StopRule.max_evals
    plateaus: int = StopRule.plateaus
    images_per_batch: int = 1
    seed: int = 0

    def __post_init__(self):
        if not self.backbones:
            raise ValueError("no backbones: give at least one (name, weights) pair")
        names = [name for name, _ in self.backbones]
        if len(set(names)) != len(names):
            raise ValueError(f"backbone names must be unique (rows are keyed by name), got {names}; "
                             "compare two weights of one model in two runs with different --out")
        for k in self.ks:
            if not 0 < k <= 1:
                raise ValueError(f"K={k} must be a fraction of the positions in (0, 1]")
        for name in ("size", "images_per_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer={self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        _ = self.rule  # StopRule checks tol, window, max_evals and plateaus

    @property
    def rule(self) -> StopRule:
        return StopRule(self.tol, self.window, self.max_evals, self.plateaus)

    @property
    def learning_rate(self) -> float:
        return DEFAULT_LR[self.optimizer] if self.lr is None else self.lr

    def to_json(self) -> dict:
        return json.loads(json.dumps(asdict(self)))


def _photo(name: str):
    try:
        from skimage import data
    except ImportError as err:
        raise ImportError("the photographs come from scikit-image: pip install scikit-image "
                          "(or pass photos=() / --photos with no names)") from err
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; choose from {', '.join(PHOTOS)}")
    return getattr(data, name)()


def claim_images(cue_conflict=None, n_cue_conflict: int = 32, photos=PHOTOS, seed: int = 0) -> list[ClaimImage]:
    """scikit-image's ``photos`` plus a seeded sample of ``n_cue_conflict`` stimuli.

    The sample is stratified by shape category (the 16 categories take turns,
    each shuffled with ``seed``), so 32 stimuli are 2 per category.
    """
    images = [ClaimImage(name, "photo", _photo(name)) for name in photos]
    if n_cue_conflict:
        from ..shape_bias.dataset import scan_cue_conflict

        if cue_conflict is None:
            raise ValueError(f"n_cue_conflict={n_cue_conflict} needs the cue-conflict folder (cue_conflict=DIR)")
        by_shape: dict[str, list[Path]] = {}
        for path, shape, _texture in scan_cue_conflict(cue_conflict):
            by_shape.setdefault(shape, []).append(path)
        rng = random.Random(seed)
        for paths in by_shape.values():
            rng.shuffle(paths)
        total = sum(len(p) for p in by_shape.values())
        if n_cue_conflict > total:
            raise ValueError(f"n_cue_conflict={n_cue_conflict} but {cue_conflict} holds {total} stimuli")
        picked: list[Path] = []
        for i in range(max(len(p) for p in by_shape.values())):
            picked += [paths[i] for _, paths in sorted(by_shape.items()) if i < len(paths)]
        images += [ClaimImage(p.stem, "cue-conflict", p) for p in picked[:n_cue_conflict]]
    names = [im.name for im in images]
    if len(set(names)) != len(names):
        raise ValueError(f"image names must be unique, got {names}")
    return images


def _jobs(config: ClaimConfig):
    """``(analysis, condition, k)`` for one image: K-free conditions once, the others per K."""
    for analysis, (free, *masked) in ANALYSES.items():
        yield analysis, free, None
        for k in config.ks:
            for cond in masked:
                yield analysis, cond, k


def example_path(out: Path, backbone: str, image: str, analysis: str, cond: str, k) -> Path:
    """Where a run saves an example image's output (``k`` None for the conditions that ignore K)."""
    suffix = "" if k is None else f"_k{k:g}"
    return out / "examples" / backbone / image / f"{analysis}_{cond}{suffix}.png"


def _load_rows(checkpoint: Path, config: dict, names: list[str]) -> list[dict]:
    """The rows of a checkpoint made with the same settings; a clear error for anything else."""
    data = read_json_checkpoint(checkpoint, CHECKPOINT_FORMAT, required=("config", "rows"))
    saved, rows = data["config"], data["rows"]
    if not isinstance(rows, list) or not all(isinstance(r, dict) and {"backbone", "image"} <= r.keys() for r in rows):
        raise checkpoint_error(checkpoint, "its rows lack 'backbone' or 'image' (written by another version?)")
    check_same_settings(checkpoint, {**saved, "images": data.get("images")}, {**config, "images": names})
    return rows


def _tasks(config: ClaimConfig, n_images: int) -> list[tuple[Task, object]]:
    """``(task, k as recorded)`` for every image of a batch, image by image (K-free conditions: ``k`` None)."""
    return [(Task(analysis, cond, config.ks[0] if k is None else k, target=j), k)
            for j in range(n_images) for analysis, cond, k in _jobs(config)]


def _optimise(extractor: FeatureExtractor, targets: list[torch.Tensor], config: ClaimConfig, device):
    """One batch: every condition of every target; ``(result, target features, tasks)``."""
    with torch.no_grad():
        features = [extractor(t) for t in targets]
    tasks = _tasks(config, len(targets))
    objective = BatchObjective(extractor, features, [t for t, _ in tasks])
    result = optimize_tasks(objective, len(tasks), tuple(targets[0].shape), optimizer=config.optimizer,
                            rule=config.rule, lr=config.learning_rate, seed=config.seed, device=device)
    return result, features, tasks


def run_claim(images: list[ClaimImage], config: ClaimConfig, out, *, examples=(), resume: bool = False,
              device=None, progress: bool = True) -> list[dict]:
    """Every image through every condition on every backbone; one row per result.

    A row: backbone, image, source, analysis, condition, k (None when the
    condition ignores K), the four scores, the evaluations used, whether the
    optimisation converged, the loss at the start and the best loss, and the
    wall time of the row's batch. Images named in ``examples`` also get their
    outputs saved as PNGs under ``out/examples/<backbone>/<image>/`` (for the
    figure). ``device``: where the optimisation runs (default: CUDA when there
    is one, else the CPU).
    """
    device = analysis_device(None, device)
    out = Path(out)
    checkpoint = out / "claim.checkpoint.json"
    names = [im.name for im in images]
    rows = _load_rows(checkpoint, config.to_json(), names) if resume and checkpoint.is_file() else []
    done = {(r["backbone"], r["image"]) for r in rows}
    per_image = len(list(_jobs(config)))
    todo = [(b, im) for b in config.backbones for im in images if (b[0], im.name) not in done]
    bar = tqdm(total=len(todo) * per_image, desc="claim", unit="opt", disable=not progress)
    for backbone, weights in config.backbones:
        pending = [im for b, im in todo if b[0] == backbone]
        if not pending:
            continue
        net = load_backbone(backbone, weights).to(device)  # built here, so ours to move
        extractor = FeatureExtractor(net, default_layers(net, backbone))
        with frozen(net):
            for start in range(0, len(pending), config.images_per_batch):
                batch = pending[start : start + config.images_per_batch]
                bar.set_postfix_str(f"{backbone} {', '.join(im.name for im in batch)}", refresh=True)
                targets = [prepare_image(im.image, config.size).to(device) for im in batch]
                began = time.perf_counter()
                result, features, tasks = _optimise(extractor, targets, config, device)
                seconds = round(time.perf_counter() - began, 2)
                for i, (task, k) in enumerate(tasks):
                    im, image = batch[task.target], result.images[i : i + 1]
                    with torch.no_grad():
                        scores = image_scores(image.cpu(), targets[task.target].cpu(), extractor(image),
                                              features[task.target])
                    rows.append({
                        "backbone": backbone, "image": im.name, "source": im.source, "analysis": task.analysis,
                        "condition": task.condition, "k": k, **{s: scores[s] for s in SCORES},
                        **result.trackers[i].summary(), "batch_seconds": seconds,
                    })
                    if im.name in examples:
                        save_png(image, example_path(out, backbone, im.name, task.analysis, task.condition, k))
                for im, target in zip(batch, targets, strict=True):
                    if im.name in examples:
                        save_png(target, out / "examples" / backbone / im.name / "target.png")
                bar.update(len(tasks))
                atomic_write_json(checkpoint, {"format": CHECKPOINT_FORMAT, "config": config.to_json(),
                                               "images": names, "rows": rows})
    bar.close()
    return rows
