"""What every stimulus set has in common: labelled image files decoded to uint8 tensors.

Why one base: cue-conflict and the shape-only sets (edge, silhouette, sketch,
stylized) differ only in how their folders are laid out and labelled; decoding,
the one-size check, the per-image labels and the batching are the same, so the
evaluator, the placement search and the distributed sharding take any of them.

An item is ``(path, shape, texture)``: the shape label is the category, and a
shape-only stimulus has no texture cue of another category (``texture == shape``,
like the 80 cue-conflict images whose shape and texture agree).
"""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.transforms.functional import pil_to_tensor

__all__ = ["StimulusError", "Stimuli", "stack", "common_size"]


class StimulusError(ValueError):
    """A stimuli folder is missing, incomplete, or holds a bad file (the message names the path)."""


def common_size(paths: list[Path]) -> tuple[int, int] | None:
    """The stimuli's (width, height): that of the first, middle and last image when two agree (read from the
    headers only), else the most common over all; None if no header can be read (decoding will name the file)."""

    def size(path):
        try:
            with Image.open(path) as image:
                return image.size
        except (OSError, UnidentifiedImageError):
            return None

    if not paths:
        return None
    sample = [size(p) for p in (paths[0], paths[len(paths) // 2], paths[-1])]
    for candidate in sample:
        if candidate is not None and sample.count(candidate) >= 2:
            return candidate
    sizes = [s for s in map(size, paths) if s is not None]
    return max(set(sizes), key=sizes.count) if sizes else None


class Stimuli(Dataset):
    """Decoded stimuli as uint8 (3, H, W) tensors plus their index.

    Subclasses set ``name`` (the dataset's model-vs-human name), ``root`` and
    ``items`` (``[(path, shape, texture)]`` in evaluation order) and call
    :meth:`_measure`. Decoding happens in ``__getitem__``, so DataLoader workers
    do it in parallel; normalisation is left to the evaluator (one vectorised op
    per batch). A stimulus of another size than the rest is refused there with
    its path (batches need one size, and model-vs-human feeds 224 px stimuli
    without resizing).
    """

    name = "stimuli"
    error = StimulusError
    shape_only = False  # scored by accuracy (and error consistency), not by shape bias

    def _measure(self) -> None:
        self.size = common_size([path for path, _, _ in self.items])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        path = self.items[index][0]
        try:
            with Image.open(path) as image:
                tensor = pil_to_tensor(image.convert("RGB"))
        except (OSError, UnidentifiedImageError) as err:
            raise self.error(f"cannot decode image {path}: {err}") from None
        if self.size is not None and tuple(tensor.shape[:0:-1]) != self.size:
            (w, h), (ww, hh) = tensor.shape[:0:-1], self.size
            raise self.error(f"{path} is {w}x{h} pixels, the other stimuli {ww}x{hh}: replace it with the "
                             "original stimulus")
        return tensor, index

    def label_pairs(self) -> list[tuple[str, str]]:
        """(shape, texture) of every item, in item order (the order of per-image decisions)."""
        return [(shape, texture) for _path, shape, texture in self.items]

    def labels(self, index: int) -> tuple[str, str, str]:
        """(file name, shape, texture) of item ``index``."""
        path, shape, texture = self.items[index]
        return path.name, shape, texture

    def image_names(self) -> list[str]:
        """The file name of every item, in item order (model-vs-human's ``imagename``)."""
        return [path.name for path, _, _ in self.items]


def stack(batch):
    """Collate that names the offending files when image sizes differ."""
    images, indices = zip(*batch, strict=True)
    if len({tuple(i.shape) for i in images}) > 1:
        raise StimulusError(f"images of different sizes in one batch: {sorted({tuple(i.shape) for i in images})}")
    return torch.stack(images), torch.tensor(indices)
