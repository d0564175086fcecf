"""What texture synthesis and reconstruction share: inputs, the optimisation of all conditions, the result."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from .._io import atomic_write_json
from ..functional import resolve_k, validate_k
from .backbones import load_backbone
from .conditions import condition_mask
from .convergence import StopRule
from .devices import analysis_device, placed
from .features import FeatureExtractor, default_layers, frozen, positions_of, warn_degenerate
from .images import load_image, save_grid, save_png, to_tensor
from .objectives import BatchObjective, Task
from .optimize import DEFAULT_LR, optimize_tasks
from .scores import STRUCTURE_SCORES, TEXTURE_SCORES, image_scores

__all__ = ["AnalysisResult", "prepare_image", "prepare_model", "run_conditions", "SCORE_DOC"]

SCORE_DOC = {
    "ssim": "structure, higher = closer: grayscale SSIM vs the target (Gaussian window 1.5)",
    "edge_correlation": "structure, higher = closer: Pearson correlation of Sobel edge magnitudes vs the target",
    "gram_distance": "texture, lower = closer: mean over layers of ||G(x)-G(target)||_F/||G(target)||_F, full activations",
    "color_histogram_distance": "colour, lower = closer: total-variation distance of 8x8x8 RGB histograms, in [0, 1]",
}


def prepare_image(image, size: int | None) -> torch.Tensor:
    """A path, PIL image, HxWx3 array or ``(1, 3, H, W)`` tensor in [0, 1] as a square tensor."""
    if isinstance(image, (str, Path)):
        return load_image(image, size)
    if isinstance(image, torch.Tensor):
        t = image.detach().float()
        if t.ndim == 3:
            t = t.unsqueeze(0)
        if t.ndim != 4 or t.shape[:2] != (1, 3):
            raise ValueError(f"an image tensor must be (1, 3, H, W) or (3, H, W) in [0, 1], got {tuple(image.shape)}")
        if size is not None and tuple(t.shape[2:]) != (size, size):
            pixels = (t[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
            return to_tensor(Image.fromarray(pixels), size)
        return t.clamp(0, 1)
    return to_tensor(image, size)


def prepare_model(model, weights) -> tuple[nn.Module, str]:
    """``(module, name)``: a name is built with ``load_backbone``, a module used as is."""
    if isinstance(model, str):
        return load_backbone(model, weights), model
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a model name or an nn.Module, got {type(model).__name__}")
    if weights is not None:
        raise ValueError("weights= only applies when the model is given by name")
    return model, type(model).__name__


@dataclass
class AnalysisResult:
    """Target, one image per condition, how each optimisation went, scores and the settings used.

    ``losses[cond]``: the loss at every evaluation; ``optimisation[cond]``:
    evaluations used, whether the rule saw convergence (else the cap stopped
    it), the first and the best loss.
    """

    kind: str
    target: torch.Tensor
    images: dict[str, torch.Tensor]
    losses: dict[str, list[float]]
    optimisation: dict[str, dict]
    scores: dict[str, dict[str, float]]
    kept_fraction: dict[str, dict[str, float]]
    config: dict = field(default_factory=dict)
    paths: dict = field(default_factory=dict)

    @property
    def not_converged(self) -> list[str]:
        return [c for c, o in self.optimisation.items() if not o["converged"]]

    def summary(self) -> dict:
        conditions = {
            cond: {
                **self.scores[cond],
                **self.optimisation[cond],
                "kept_fraction": self.kept_fraction[cond],
                **({"image": self.paths["images"][cond]} if "images" in self.paths else {}),
            }
            for cond in self.images
        }
        out = {"kind": self.kind, **self.config, "conditions": conditions, "not_converged": self.not_converged,
               "scores_doc": SCORE_DOC}
        if self.paths:
            out["grid"] = self.paths.get("grid")
            out["json"] = self.paths.get("json")
        return out

    def save(self, out_dir, stem: str | None = None) -> dict:
        """Write ``<stem>_<kind>_grid.png`` (target, then each condition), one PNG per
        condition and ``<stem>_<kind>.json``; returns the paths."""
        out = Path(out_dir)
        prefix = f"{stem}_{self.kind}" if stem else self.kind
        labels = ["target"] + [_label(c, self.scores[c], self.optimisation[c]) for c in self.images]
        cell = max(200, self.target.shape[-1])  # room for the labels
        grid = save_grid([self.target, *self.images.values()], labels, out / f"{prefix}_grid.png", cell=cell)
        images = {c: str(save_png(im, out / f"{prefix}_{c}.png")) for c, im in self.images.items()}
        self.paths = {"grid": str(grid), "images": images, "json": str(out / f"{prefix}.json")}
        summary = self.summary()
        summary["losses"] = self.losses
        atomic_write_json(out / f"{prefix}.json", summary)
        return self.paths


def _label(cond: str, scores: dict, optimisation: dict) -> str:
    state = "converged" if optimisation["converged"] else "NOT converged"
    return (
        f"{cond}\nssim {scores['ssim']:.2f} edge {scores['edge_correlation']:.2f}\n"
        f"gram {scores['gram_distance']:.2f} colour {scores['color_histogram_distance']:.2f}\n"
        f"{optimisation['evals']} evals, {state}"
    )


def run_conditions(
    kind: str,
    image,
    model,
    *,
    conditions,
    weights=None,
    layers=None,
    topk=0.05,
    optimizer: str = "adam",
    lr: float | None = None,
    rule: StopRule,
    size: int | None = 256,
    seed: int = 0,
    device=None,
    progress: bool = True,
) -> AnalysisResult:
    """Optimise one image per condition of ``kind`` until ``rule`` stops each, from the same seeded noise.

    With Adam all conditions run as one batch (``objectives``: each row is
    its own optimisation); with L-BFGS one after the other.
    """
    validate_k(topk)
    start = time.perf_counter()
    target = prepare_image(image, size)
    net, model_name = prepare_model(model, weights)
    device = analysis_device(model, device)
    dtype = next((p.dtype for p in net.parameters() if p.is_floating_point()), torch.float32)
    target = target.to(device=device, dtype=dtype)
    lr = DEFAULT_LR[optimizer] if lr is None and optimizer in DEFAULT_LR else lr
    with placed(net, device), frozen(net):
        layer_names = layers or default_layers(net, model_name if isinstance(model, str) else None, size=target.shape[-1])
        extractor = FeatureExtractor(net, layer_names)
        with torch.no_grad():
            target_features = extractor(target)
        warn_degenerate(target_features, topk)
        objective = BatchObjective(extractor, [target_features], [Task(kind, cond, topk) for cond in conditions])
        result = optimize_tasks(objective, len(conditions), tuple(target.shape), optimizer=optimizer, rule=rule, lr=lr,
                                seed=seed, device=device, dtype=dtype, progress=progress,
                                desc=f"{kind} ({len(conditions)} conditions)")
        images, losses, optimisation, scores, kept = {}, {}, {}, {}, {}
        for i, cond in enumerate(conditions):
            images[cond] = result.images[i : i + 1]
            losses[cond] = result.trackers[i].losses
            optimisation[cond] = result.trackers[i].summary()
            with torch.no_grad():
                scores[cond] = image_scores(images[cond].cpu().float(), target.cpu().float(), extractor(images[cond]),
                                            target_features)
            masks = {n: condition_mask(t, cond, topk) for n, t in target_features.items()}
            kept[cond] = kept_fraction(masks, target_features)
    config = {
        "image": str(image) if isinstance(image, (str, Path)) else None,
        "model": model_name,
        "weights": None if weights is None else str(weights),
        "layers": list(extractor.layers),
        "topk": topk,
        "k_per_layer": {
            n: {"positions": positions_of(t), "k": resolve_k(topk, positions_of(t)), "shape": list(t.shape)}
            for n, t in target_features.items()
        },
        "optimizer": optimizer,
        "lr": lr,
        "stop_rule": rule.to_json(),
        "size": list(target.shape[-2:]),
        "seed": seed,
        "device": str(device),
        "seconds": round(time.perf_counter() - start, 2),
        "structure_scores": list(STRUCTURE_SCORES),
        "texture_scores": list(TEXTURE_SCORES),
    }
    return AnalysisResult(kind, target.cpu().float(), {c: im.cpu().float() for c, im in images.items()}, losses,
                          optimisation, scores, kept, config)


def kept_fraction(masks: dict[str, torch.Tensor | None], features: dict[str, torch.Tensor]) -> dict[str, float]:
    """Fraction of target entries a condition keeps per layer (1.0 where no mask)."""
    return {n: 1.0 if masks.get(n) is None else float(masks[n].float().mean()) for n in features}
