"""Measuring the paper's claim: Top-K responses carry structure, the rest texture (Figs. 2-3).

Why: ``reconstruct`` and ``texture_synthesis`` show the claim on one image;
whether it holds on a backbone is a question about many images. For every
backbone and image this runs

* reconstruction from all (``identity``), the Top-K (``topk``) and the
  non-Top-K (``non_topk``) responses, and
* texture synthesis from all responses (``all``), with the Top-K removed
  (``without_topk``) and from the Top-K only (``topk_only``),

at each K (``identity`` and ``all`` do not depend on K and run once per
image), each condition from the same seeded noise, and records the four
scores of :mod:`.scores` per image. ``claim_report`` turns the rows into means
with bootstrap intervals, paired differences and the verdict.

Rows are checkpointed atomically after every image (``claim.checkpoint.json``),
so an interrupted run resumes with ``resume=True`` and gives the same rows.
"""
from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from .._io import atomic_write_json, check_same_settings
from .backbones import load_backbone
from .common import prepare_image
from .devices import analysis_device
from .features import default_layers
from .images import save_png
from .reconstruct import reconstruct
from .texture import texture_synthesis

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
    recon_steps: int = 1
    texture_steps: int = 1
    inner_iters: int = 20
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
        for name in ("size", "recon_steps", "texture_steps", "inner_iters"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

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


def _measure(net, layers, target, analysis: str, cond: str, k, config: ClaimConfig, device=None):
    fn, steps = (reconstruct, config.recon_steps) if analysis == "reconstruct" else (texture_synthesis, config.texture_steps)
    return fn(target, net, layers=layers, topk=k if k is not None else config.ks[0], conditions=(cond,), steps=steps,
              inner_iters=config.inner_iters, size=None, seed=config.seed, device=device, progress=False)


def example_path(out: Path, backbone: str, image: str, analysis: str, cond: str, k) -> Path:
    """Where a run saves an example image's output (``k`` None for the conditions that ignore K)."""
    suffix = "" if k is None else f"_k{k:g}"
    return out / "examples" / backbone / image / f"{analysis}_{cond}{suffix}.png"


def _load_rows(checkpoint: Path, config: dict, names: list[str]) -> list[dict]:
    data = json.loads(checkpoint.read_text())
    if data.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{checkpoint} is not a claim checkpoint")
    check_same_settings(checkpoint, {**data["config"], "images": data.get("images")}, {**config, "images": names})
    return data["rows"]


def run_claim(images: list[ClaimImage], config: ClaimConfig, out, *, examples=(), resume: bool = False,
              device=None, progress: bool = True) -> list[dict]:
    """Every image through every condition on every backbone; one row per result.

    A row: backbone, image, source, analysis, condition, k (None when the
    condition ignores K), the four scores, the loss before and after, seconds.
    Images named in ``examples`` also get their outputs saved as PNGs under
    ``out/examples/<backbone>/<image>/`` (for the figure). ``device``: where
    the optimisation runs (default: CUDA when there is one, else the CPU).
    """
    device = analysis_device(None, device)
    out = Path(out)
    checkpoint = out / "claim.checkpoint.json"
    names = [im.name for im in images]
    rows = _load_rows(checkpoint, config.to_json(), names) if resume and checkpoint.is_file() else []
    done = {(r["backbone"], r["image"]) for r in rows}
    jobs = list(_jobs(config))
    todo = [(b, im) for b in config.backbones for im in images if (b[0], im.name) not in done]
    bar = tqdm(total=len(todo) * len(jobs), desc="claim", unit="opt", disable=not progress)
    for backbone, weights in config.backbones:
        pending = [im for b, im in todo if b[0] == backbone]
        if not pending:
            continue
        net = load_backbone(backbone, weights).to(device)  # built here, so ours to move
        layers = default_layers(net, backbone)
        for im in pending:
            target = prepare_image(im.image, config.size)
            if im.name in examples:
                save_png(target, out / "examples" / backbone / im.name / "target.png")
            for analysis, cond, k in jobs:
                bar.set_postfix_str(f"{backbone} {im.name} {analysis} {cond} {k or ''}", refresh=False)
                result = _measure(net, layers, target, analysis, cond, k, config, device)
                losses = result.losses[cond]
                rows.append({
                    "backbone": backbone, "image": im.name, "source": im.source, "analysis": analysis,
                    "condition": cond, "k": k, **{s: result.scores[cond][s] for s in SCORES},
                    "loss_initial": losses[0], "loss_final": losses[-1], "seconds": result.config["seconds"],
                })
                if im.name in examples:
                    save_png(result.images[cond], example_path(out, backbone, im.name, analysis, cond, k))
                bar.update(1)
            atomic_write_json(checkpoint, {"format": CHECKPOINT_FORMAT, "config": config.to_json(),
                                           "images": names, "rows": rows})
    bar.close()
    return rows
