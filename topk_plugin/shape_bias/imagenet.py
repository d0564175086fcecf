"""ImageNet top-1 on a folder of labelled images: what inference-time sparsity costs in recognition.

Layout: images named ``<wnid>_<anything>.<ext>`` (e.g. ``../shared/data/imagenet-sample``)
or inside ``<wnid>/`` folders (ImageNet's val layout after the usual reorganisation).
The label is the wnid's index among the 1000 sorted ImageNet-1k wnids (timm's
``ImageNetInfo``). Preprocessing is the model's own evaluation transform: timm's
``pretrained_cfg`` (input size, crop_pct, interpolation) when the model has one,
else torchvision's (resize 256, center crop 224, bilinear).
"""
from __future__ import annotations

import math
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from timm.data import ImageNetInfo
from torch import nn
from torch.utils.data import Dataset
from torchvision.transforms import v2
from tqdm.auto import tqdm

from .._model import model_device, model_dtype
from ..distributed import current, gather, in_index_order, shard
from .batches import inference, model_normalization, stream_batches

__all__ = ["ImageNetImages", "ImageNetError", "TopOneResult", "evaluate_imagenet", "imagenet_wnids", "eval_transform"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
_WNID = re.compile(r"^(n\d{8})")


class ImageNetError(ValueError):
    """The folder is missing, empty, or holds an image without an ImageNet label."""


def imagenet_wnids() -> list[str]:
    """The 1000 ImageNet-1k wnids in class-index order (sorted)."""
    return list(ImageNetInfo().label_names())


def eval_transform(model: nn.Module) -> v2.Compose:
    """Resize + center crop to uint8, as the model was evaluated (see module doc)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if "input_size" in cfg:
        size = cfg.get("test_input_size", cfg["input_size"])[-1]
        crop_pct = cfg.get("test_crop_pct", cfg.get("crop_pct", 0.875))
        interpolation = v2.InterpolationMode(cfg.get("interpolation", "bicubic"))
        resize = math.floor(size / crop_pct)
    else:
        size, resize, interpolation = 224, 256, v2.InterpolationMode.BILINEAR
    # on the PIL image, as timm and torchvision reference evaluations do
    return v2.Compose([v2.Resize(resize, interpolation=interpolation, antialias=True), v2.CenterCrop(size), v2.PILToTensor()])


class ImageNetImages(Dataset):
    """Labelled images as uint8 (3, H, W) tensors plus their index; decoded in ``__getitem__``."""

    def __init__(self, root: str | Path, transform=None, *, limit_per_class: int | None = None):
        """``root``: ``<wnid>_*.jpg`` files or ``<wnid>/`` folders (the full 50,000-image layout); only
        paths are listed here. ``limit_per_class``: keep the first N images of each class by path."""
        self.root = Path(root)
        if not self.root.is_dir():
            raise ImageNetError(f"ImageNet image folder not found: {self.root}")
        index = {wnid: i for i, wnid in enumerate(imagenet_wnids())}
        items, unlabelled = [], []
        for path in sorted(p for p in self.root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
            rel = path.relative_to(self.root)
            match = _WNID.match(rel.parts[0]) if len(rel.parts) > 1 else _WNID.match(path.name)
            if match is None or match.group(1) not in index:
                unlabelled.append(str(path))
                continue
            items.append((path, index[match.group(1)]))
        if unlabelled:
            shown = "\n  ".join(unlabelled[:10]) + ("\n  ..." if len(unlabelled) > 10 else "")
            raise ImageNetError(
                f"{len(unlabelled)} image(s) under {self.root} carry no ImageNet-1k wnid (name them "
                f"<wnid>_*.jpg or put them in <wnid>/ folders):\n  {shown}"
            )
        if not items:
            raise ImageNetError(f"no images under {self.root} (expected <wnid>_*.jpg files or <wnid>/ folders)")
        if limit_per_class is not None:
            if limit_per_class < 1:
                raise ImageNetError(f"limit_per_class must be >= 1, got {limit_per_class}")
            kept, count = [], Counter()
            for path, label in items:  # sorted by path: the first N of each class
                if count[label] < limit_per_class:
                    kept.append((path, label))
                    count[label] += 1
            items = kept
        self.items = items
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        path = self.items[i][0]
        try:
            with Image.open(path) as image:
                rgb = image.convert("RGB")
        except (OSError, UnidentifiedImageError) as err:
            raise ImageNetError(f"cannot decode image {path}: {err}") from None
        return (self.transform or v2.PILToTensor())(rgb), i

    def labels(self, indices: torch.Tensor) -> torch.Tensor:
        return torch.tensor([self.items[i][1] for i in indices.tolist()])


@dataclass
class TopOneResult:
    name: str
    top1: float
    n_images: int
    correct: list[bool]
    seconds: float


def top1_hits(dataset: ImageNetImages, indices: torch.Tensor, logits: torch.Tensor) -> list[bool]:
    """Per image: is the arg-max of the 1000 logits the image's class?"""
    if logits.ndim != 2 or logits.shape[1] != 1000:
        raise ValueError(f"ImageNet top-1 needs 1000 logits per image, got shape {tuple(logits.shape)}")
    return (logits.argmax(1).cpu() == dataset.labels(indices)).tolist()


def evaluate_imagenet(
    model: nn.Module,
    data: ImageNetImages | str | Path,
    *,
    name: str = "model",
    batch_size: int = 32,
    workers: int = 2,
    device=None,
    progress: bool = True,
    channels_last: bool = True,
) -> TopOneResult:
    """Top-1 accuracy of ``model`` (1000 ImageNet logits) on ``data`` (sharded under torchrun; inputs
    in the model's dtype, the model given back as it came: like
    :func:`~topk_plugin.shape_bias.evaluate.evaluate_model`)."""
    dataset = data if isinstance(data, ImageNetImages) else ImageNetImages(data, eval_transform(model))
    mean, std = model_normalization(model)
    device = torch.device(device) if device is not None else model_device(model)
    dtype = model_dtype(model)
    env = current()  # under torchrun: this process' shard, then every shard's hits
    start = time.perf_counter()

    def work():
        hits = []
        batches = stream_batches(shard(dataset, env), batch_size=batch_size, workers=workers, device=device,
                                 mean=mean, std=std, channels_last=channels_last, dtype=dtype)
        with inference(model, channels_last, device), tqdm(total=len(dataset), desc=f"imagenet {name}", unit="img",
                                                    disable=not (progress and env.main)) as bar:
            for x, indices, _ in batches:
                hits += zip(indices.tolist(), top1_hits(dataset, indices, model(x)), strict=True)
                bar.update(len(indices) * env.world)
        return hits

    correct = in_index_order(gather(env, work))
    return TopOneResult(name, sum(correct) / len(correct), len(correct), correct, time.perf_counter() - start)
