"""Top-K mask maps of one layer (paper Figs. 8 and 9).

Why: the positions a channel keeps under Top-K are where it responds most;
if Top-K carries structure, these form part-like regions (an eye, a wheel,
a contour) rather than texture spread over the whole image.

Outputs: the binary Top-K map of each channel, tiled (white = kept), most
active channels first; and the image overlaid with the kept positions of the
most active channels (one panel per channel, plus all of them in colour).
A channel's activity is the mean ``|x|`` of its Top-K entries.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from .._io import atomic_write_json
from ..functional import resolve_k, topk_mask, validate_k
from .common import prepare_image, prepare_model
from .devices import analysis_device, placed
from .features import FeatureExtractor, channel_dim_of, default_layers, frozen, positions_of
from .images import image_grid, save_png

__all__ = ["topk_masks", "MaskResult"]

# distinct colours for the combined overlay (tab10)
_PALETTE = torch.tensor([
    [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
    [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207],
], dtype=torch.float32) / 255


@dataclass
class MaskResult:
    """The Top-K mask of every channel of one layer for one image."""

    image: torch.Tensor  # (1, 3, H, W) in [0, 1]
    activation: torch.Tensor  # (c, h, w)
    mask: torch.Tensor  # (c, h, w) bool
    order: list[int]  # channels, most active first
    activity: list[float]  # per channel, in channel order
    config: dict = field(default_factory=dict)
    paths: dict = field(default_factory=dict)

    def upsampled(self, channel: int) -> torch.Tensor:
        """The channel's mask at the image's size (nearest: one block per position)."""
        m = self.mask[channel][None, None].float()
        return F.interpolate(m, size=self.image.shape[-2:], mode="nearest")[0, 0]

    def tiled(self, max_channels: int | None = 64, cell: int = 48):
        """PIL grid of the binary maps of the most active ``max_channels`` channels."""
        chans = self.order[:max_channels] if max_channels else self.order
        maps = [self.mask[c].float()[None] for c in chans]
        columns = max(1, round(len(maps) ** 0.5))
        return image_grid(maps, columns=columns, cell=cell, pad=2, background=(200, 60, 60))

    def overlay(self, top: int = 8):
        """PIL grid: all ``top`` channels in colour, then one panel per channel."""
        img = self.image[0]
        chans = self.order[:top]
        panels, labels = [], []
        combined = img * 0.35
        for i, c in enumerate(chans):
            m = self.upsampled(c)
            colour = _PALETTE[i % len(_PALETTE)].view(3, 1, 1)
            combined = torch.where(m.bool(), 0.45 * img + 0.55 * colour, combined)
            panels.append(img * (0.2 + 0.8 * m) + 0.25 * m * torch.tensor([1.0, 0.1, 0.1]).view(3, 1, 1))
            labels.append(f"ch {c}")
        return image_grid([img, combined, *panels], ["image", f"top {len(chans)}", *labels], columns=min(5, len(panels) + 2))

    def save(self, out_dir, stem: str | None = None, *, max_channels: int | None = 64, top: int = 8) -> dict:
        out = Path(out_dir)
        prefix = f"{stem}_masks" if stem else "masks"
        tiled = save_png(self.tiled(max_channels), out / f"{prefix}_tiled.png")
        overlay = save_png(self.overlay(top), out / f"{prefix}_overlay.png")
        self.paths = {"tiled": str(tiled), "overlay": str(overlay), "json": str(out / f"{prefix}.json")}
        atomic_write_json(out / f"{prefix}.json", self.summary(top))
        return self.paths

    def summary(self, top: int = 8) -> dict:
        return {
            **self.config,
            "kept_fraction": float(self.mask.float().mean()),
            "top_channels": [{"channel": c, "activity": self.activity[c]} for c in self.order[:top]],
            **({"paths": self.paths} if self.paths else {}),
        }


def topk_masks(image, model="vgg16", *, weights=None, layer: str | None = None, topk=0.05,
               size: int | None = 224, device=None) -> MaskResult:
    """The Top-K map of every channel of ``layer`` (default: the third default layer, e.g. VGG's pool2)."""
    validate_k(topk)
    target = prepare_image(image, size)
    net, name = prepare_model(model, weights)
    device = analysis_device(model, device)
    with placed(net, device), frozen(net), torch.no_grad():
        if layer is None:
            defaults = default_layers(net, name if isinstance(model, str) else None, size=target.shape[-1])
            layer = defaults[min(2, len(defaults) - 1)]
        act = FeatureExtractor(net, [layer])(target.to(device))
    act = next(iter(act.values())).cpu()
    if channel_dim_of(act) == -1:
        raise ValueError(f"layer {layer!r} outputs tokens {tuple(act.shape)}; mask maps need (n, c, h, w) maps")
    if act.ndim != 4:
        raise ValueError(f"layer {layer!r} outputs shape {tuple(act.shape)}; mask maps need (n, c, h, w)")
    mask = topk_mask(act, topk)[0]
    kept = torch.where(mask, act[0].abs(), 0.0).flatten(1)
    activity = (kept.sum(1) / mask.flatten(1).sum(1).clamp_min(1)).tolist()
    order = sorted(range(len(activity)), key=lambda c: (-activity[c], c))
    config = {
        "image": str(image) if isinstance(image, (str, Path)) else None,
        "model": name,
        "weights": None if weights is None else str(weights),
        "layer": layer,
        "shape": list(act.shape),
        "topk": topk,
        "k": resolve_k(topk, positions_of(act)),
        "positions": positions_of(act),
        "size": list(target.shape[-2:]),
    }
    return MaskResult(target.cpu(), act[0], mask, order, activity, config)
