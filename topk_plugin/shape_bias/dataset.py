"""The cue-conflict stimuli folder: validation and a Dataset of decoded images."""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.transforms.functional import pil_to_tensor

from .categories import CATEGORIES
from .metrics import labels_from_filename

__all__ = ["CueConflictError", "CueConflictDataset", "scan_cue_conflict", "IMAGES_PER_CATEGORY"]

IMAGES_PER_CATEGORY = 80


class CueConflictError(ValueError):
    """The stimuli folder is missing, incomplete, or holds a bad file."""


def scan_cue_conflict(root: str | Path, per_category: int = IMAGES_PER_CATEGORY) -> list[tuple[Path, str, str]]:
    """``[(path, shape, texture)]`` sorted by path, after checking the whole set.

    Every problem is collected and reported at once: missing or extra category
    folders, misnamed files (with their paths), wrong counts.
    """
    root = Path(root)
    if not root.is_dir():
        raise CueConflictError(f"cue-conflict folder not found: {root}")
    problems, items = [], []
    folders = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    for missing in sorted(set(CATEGORIES) - folders):
        problems.append(f"missing folder {root / missing}")
    for extra in sorted(folders - set(CATEGORIES)):
        problems.append(f"unexpected folder {root / extra} (not one of the 16 categories)")
    for category in CATEGORIES:
        folder = root / category
        if not folder.is_dir():
            continue
        files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        good = 0
        for path in files:
            try:
                shape, texture = labels_from_filename(path.name)
            except ValueError:
                problems.append(f"misnamed file {path} (expected <shape>N-<texture>M.png)")
                continue
            if shape != category or texture not in CATEGORIES:
                problems.append(f"misnamed file {path} (shape {shape!r} in folder {category!r}, texture {texture!r})")
                continue
            items.append((path, shape, texture))
            good += 1
        if good != per_category:
            problems.append(f"{folder} holds {good} valid images, expected {per_category}")
    if problems:
        shown = "\n  ".join(problems[:30]) + ("\n  ..." if len(problems) > 30 else "")
        raise CueConflictError(f"the cue-conflict set at {root} is incomplete or invalid:\n  {shown}")
    return sorted(items)


def _common_size(paths: list[Path]) -> tuple[int, int] | None:
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


class CueConflictDataset(Dataset):
    """Decoded stimuli as uint8 (3, H, W) tensors plus their index.

    Decoding happens in ``__getitem__``, so DataLoader workers do it in parallel;
    normalisation is left to the evaluator (one vectorised op per batch). A
    stimulus of another size than the rest is refused there with its path
    (batches need one size).
    """

    def __init__(self, root: str | Path, per_category: int = IMAGES_PER_CATEGORY):
        self.root = Path(root)
        self.items = scan_cue_conflict(self.root, per_category)
        self.size = _common_size([path for path, _, _ in self.items])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        path = self.items[index][0]
        try:
            with Image.open(path) as image:
                tensor = pil_to_tensor(image.convert("RGB"))
        except (OSError, UnidentifiedImageError) as err:
            raise CueConflictError(f"cannot decode image {path}: {err}") from None
        if self.size is not None and tuple(tensor.shape[:0:-1]) != self.size:
            (w, h), (ww, hh) = tensor.shape[:0:-1], self.size
            raise CueConflictError(f"{path} is {w}x{h} pixels, the other stimuli {ww}x{hh}: replace it with the "
                                   "original stimulus")
        return tensor, index

    def label_pairs(self) -> list[tuple[str, str]]:
        """(shape, texture) of every item, in item order (the order of per-image decisions)."""
        return [(shape, texture) for _path, shape, texture in self.items]

    def labels(self, index: int) -> tuple[str, str, str]:
        """(file name, shape, texture) of item ``index``."""
        path, shape, texture = self.items[index]
        return path.name, shape, texture


def stack(batch):
    """Collate that names the offending files when image sizes differ."""
    images, indices = zip(*batch, strict=True)
    if len({tuple(i.shape) for i in images}) > 1:
        raise CueConflictError(f"images of different sizes in one batch: {sorted({tuple(i.shape) for i in images})}")
    return torch.stack(images), torch.tensor(indices)
