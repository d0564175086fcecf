"""Loading images as ``[0, 1]`` tensors and writing labelled PNG grids atomically.

The optimisation works in pixel space (``(1, 3, H, W)`` in ``[0, 1]``); the
backbone's own normalisation is applied later by the feature extractor, so
images and scores never depend on the model.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from .._io import atomic_write_bytes

__all__ = ["load_image", "to_tensor", "to_pil", "save_png", "image_grid", "save_grid"]


def to_tensor(image, size: int | None = None) -> torch.Tensor:
    """A PIL image or HxWx3 uint8/float array as ``(1, 3, size, size)`` in [0, 1].

    The short side is resized to ``size`` and the centre cropped to a square,
    so every image of a run (target and syntheses) has the same shape.
    """
    if isinstance(image, np.ndarray):
        arr = image
        if arr.dtype != np.uint8:
            arr = (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, axis=-1)
        image = Image.fromarray(arr[..., :3])
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image or a numpy array, got {type(image).__name__}")
    image = image.convert("RGB")
    if size is not None:
        if size < 8:
            raise ValueError(f"size={size} is too small: use at least 8 pixels")
        w, h = image.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        image = image.resize((nw, nh), Image.BICUBIC)
        left, top = (nw - size) // 2, (nh - size) // 2
        image = image.crop((left, top, left + size, top + size))
    arr = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def load_image(path, size: int | None = None) -> torch.Tensor:
    """Read an image file (any format Pillow knows) as ``(1, 3, size, size)`` in [0, 1]."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {str(path)!r} does not exist or is not a file")
    try:
        with Image.open(path) as im:
            im.load()
            return to_tensor(im, size)
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot read image {str(path)!r}: {err}") from err


def to_pil(image: torch.Tensor) -> Image.Image:
    """``(1, 3, H, W)`` or ``(3, H, W)`` in [0, 1] (clamped) as an RGB PIL image."""
    t = image.detach().cpu().float()
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {t.shape[0]}")
        t = t[0]
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    arr = (t.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(arr)


def save_png(image, path) -> Path:
    """Write a PIL image (or image tensor) as PNG via a temporary file and a rename."""
    if isinstance(image, torch.Tensor):
        image = to_pil(image)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def image_grid(images, labels=None, *, columns: int | None = None, cell: int | None = None,
               pad: int = 4, background=(255, 255, 255)) -> Image.Image:
    """Tile images (tensors or PIL) left to right, each with an optional label below
    (``\n`` starts a new line; lines wider than a cell are shortened).

    Cells are resized (nearest, so binary masks stay crisp) to ``cell`` pixels
    wide, by default the widest image.
    """
    pils = [to_pil(im) if isinstance(im, torch.Tensor) else im.convert("RGB") for im in images]
    if not pils:
        raise ValueError("no images to tile")
    labels = list(labels) if labels is not None else [None] * len(pils)
    if len(labels) != len(pils):
        raise ValueError(f"{len(labels)} labels for {len(pils)} images")
    cell = cell or max(p.width for p in pils)
    pils = [p if p.width == cell else p.resize((cell, round(p.height * cell / p.width)), Image.NEAREST) for p in pils]
    cell_h = max(p.height for p in pils)
    columns = columns or len(pils)
    rows = -(-len(pils) // columns)
    font_size = max(10, min(18, cell // 12))
    font = _font(font_size)
    lines = max((len(str(label).split("\n")) for label in labels if label), default=0)
    text_h = lines * (font_size + 3) + 4 if lines else 0
    grid = Image.new("RGB", (columns * (cell + pad) + pad, rows * (cell_h + text_h + pad) + pad), background)
    draw = ImageDraw.Draw(grid)
    for i, (p, label) in enumerate(zip(pils, labels, strict=True)):
        r, c = divmod(i, columns)
        x, y = pad + c * (cell + pad), pad + r * (cell_h + text_h + pad)
        grid.paste(p, (x, y))
        for j, text in enumerate(str(label).split("\n") if label else []):
            while len(text) > 3 and draw.textlength(text, font=font) > cell:
                text = text[:-2] + "…"
            draw.text((x + 2, y + cell_h + 2 + j * (font_size + 3)), text, fill=(0, 0, 0), font=font)
    return grid


def save_grid(images, labels, path, **kwargs) -> Path:
    """``image_grid`` written atomically as PNG."""
    return save_png(image_grid(images, labels, **kwargs), path)
