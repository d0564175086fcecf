"""Data for ``topk-plugin train``: ImageFolder datasets with reproducible augmentation and rank shards.

Why not plain ``torchvision.datasets.ImageFolder`` with a ``DistributedSampler``:
its decode errors do not name the file, and its random crops draw from the
process' global RNG, so they change with the number of loader workers and
processes. Here the augmentation of sample ``i`` in epoch ``e`` is a pure
function of ``(seed, e, i)``, and the order of an epoch a pure function of
``(seed, e)``; a resumed run, a run with other ``--workers`` and a run split
over processes see the same crops in the same global batches.

Corrupt images: every file's header is checked when the dataset is built
(fast; all bad files are listed in one error), and an image that fails to
decode later raises :class:`CorruptImageError` with its path. Nothing is
skipped silently: remove or replace the files named.
"""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, Sampler

__all__ = ["CorruptImageError", "FolderDataset", "ShardSampler", "train_transform", "eval_transform", "check_same_classes"]

# Eval resizes the shorter side to img_size / CROP_FRACTION, then center-crops (the usual 224/256).
CROP_FRACTION = 0.875


class CorruptImageError(ValueError):
    """An image file that PIL cannot read."""


def train_transform(img_size: int, mean, std):
    """Random-resized crop + horizontal flip (the paper's augmentation), then normalise."""
    from torchvision import transforms

    return transforms.Compose([
        transforms.RandomResizedCrop(img_size), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(), transforms.Normalize(mean, std),
    ])


def eval_transform(img_size: int, mean, std):
    """Resize to img_size / 0.875, center crop img_size, normalise."""
    from torchvision import transforms

    return transforms.Compose([
        transforms.Resize(round(img_size / CROP_FRACTION)), transforms.CenterCrop(img_size),
        transforms.ToTensor(), transforms.Normalize(mean, std),
    ])


def _mix(*values: int) -> int:
    """A 63-bit seed from integers (splitmix-style), so nearby inputs give unrelated seeds."""
    x = 0x9E3779B97F4A7C15
    for v in values:
        x = (x ^ (int(v) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
    return x & 0x7FFFFFFFFFFFFFFF


class FolderDataset(Dataset):
    """``root/<class>/<image>`` as (tensor, class index); see the module docstring.

    ``transform`` runs with torch's RNG seeded from ``(seed, epoch, index)``
    (set the epoch with :meth:`set_epoch`); the caller's RNG is left untouched.
    """

    def __init__(self, root, transform, *, seed: int = 0, what: str = "data"):
        from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{what} folder {str(self.root)!r} does not exist")
        try:
            self.classes, self.class_to_idx = find_classes(str(self.root))
            self.samples = make_dataset(str(self.root), self.class_to_idx, IMG_EXTENSIONS)
        except FileNotFoundError as error:
            raise FileNotFoundError(
                f"{what} folder {str(self.root)!r} is not in ImageFolder layout (one sub-folder of images "
                f"per class, e.g. {self.root}/n01440764/img.JPEG): {error}"
            ) from None
        self.transform, self.seed, self.epoch = transform, int(seed), 0
        self._check_headers()

    def _check_headers(self) -> None:
        bad = []
        for path, _ in self.samples:
            try:
                with Image.open(path) as image:
                    image.size  # noqa: B018  (the header is parsed by open)
            except (OSError, UnidentifiedImageError, ValueError) as error:
                bad.append(f"{path} ({type(error).__name__}: {error})")
        if bad:
            shown = "\n  ".join(bad[:20]) + (f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else "")
            raise CorruptImageError(
                f"{len(bad)} unreadable image file(s) under {self.root}; remove or replace them:\n  {shown}"
            )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")
        except (OSError, UnidentifiedImageError, ValueError) as error:
            raise CorruptImageError(f"cannot decode image {path}: {error}; remove or replace the file") from None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_mix(self.seed, self.epoch, index))
            return self.transform(image), target


def check_same_classes(reference: FolderDataset, other: FolderDataset) -> None:
    """``other`` must have exactly ``reference``'s class folders (the labels are their sorted order)."""
    if other.classes != reference.classes:
        missing = sorted(set(reference.classes) - set(other.classes))
        extra = sorted(set(other.classes) - set(reference.classes))
        raise ValueError(
            f"{other.root} has other class folders than the training data {reference.root} "
            f"(missing: {missing[:10] or 'none'}, extra: {extra[:10] or 'none'}); labels are the sorted "
            "folder names, so both need the same class folders"
        )


class ShardSampler(Sampler):
    """This process' share of each epoch, ``DistributedSampler``-style but exact for any world size.

    ``shuffle``: the epoch's order is ``randperm(n)`` seeded by ``(seed, epoch)``,
    padded by wrapping around to a multiple of ``world`` (as ``DistributedSampler``
    does); rank ``r`` takes every ``world``-th index from ``r``. With a per-rank
    batch of ``batch_size // world`` the union of the ranks' ``t``-th batches is
    the single-process ``t``-th batch (the last one may hold repeated images
    from the padding). A last batch of one sample per process is dropped
    (BatchNorm cannot train on it). Without ``shuffle`` (evaluation):
    ``range(rank, n, world)``, no padding, every sample once.
    """

    def __init__(self, n: int, *, rank: int = 0, world: int = 1, seed: int = 0, shuffle: bool = True,
                 batch_per_rank: int = 1):
        self.n, self.rank, self.world, self.seed, self.shuffle = n, rank, world, seed, shuffle
        self.batch_per_rank, self.epoch = batch_per_rank, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _indices(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.rank, self.n, self.world))
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(_mix(self.seed, self.epoch))).tolist()
        padded = -(-self.n // self.world) * self.world
        order += (order * (padded // self.n + 1))[: padded - self.n]
        last = len(order) % (self.batch_per_rank * self.world)
        if last == self.world and len(order) > last:  # one sample per process: BatchNorm cannot train on it
            order = order[:-last]
        return order[self.rank::self.world]

    def __iter__(self):
        return iter(self._indices())

    def __len__(self) -> int:
        return len(self._indices())
