"""Streaming normalised image batches into a model: shared by every evaluator.

Why one place: the cue-conflict evaluator, the ImageNet top-1 evaluator and the
placement search all decode uint8 images in worker processes, normalise on the
model's device in one vectorised op, and run the model in eval mode and
channels_last (about 1.7x faster on these CPUs, also cuDNN's fast path).
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .._model import kept_as_is
from .stimuli import stack

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "model_normalization", "single_thread_worker", "inference",
    "stream_batches",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def model_normalization(model: nn.Module) -> tuple[tuple, tuple]:
    """The model's own RGB mean/std (timm's ``pretrained_cfg``), else ImageNet's."""
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    mean, std = cfg.get("mean"), cfg.get("std")
    if mean is not None and std is not None and len(mean) == 3 and len(std) == 3:
        return tuple(mean), tuple(std)
    return IMAGENET_MEAN, IMAGENET_STD


def single_thread_worker(_):
    """DataLoader ``worker_init_fn``: decoding workers must not compete with the model's threads."""
    torch.set_num_threads(1)


@contextlib.contextmanager
def inference(model: nn.Module, channels_last: bool = True, device: torch.device | str | None = None):
    """Eval mode, channels_last weights and (if given) ``device`` inside; after, the model
    exactly as it came (its tensors, device, memory format and mode)."""
    with kept_as_is(model):
        model.eval()
        if device is not None:
            model.to(device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        with torch.inference_mode():
            yield model


def stream_batches(
    dataset: Dataset,
    *,
    batch_size: int,
    workers: int,
    device: torch.device,
    mean,
    std,
    channels_last: bool = True,
    dtype: torch.dtype = torch.float32,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, float]]:
    """``(x, indices, wait_seconds)`` per batch: ``x`` normalised on ``device`` as ``dtype``
    (normalised in float32 first, then cast: a bfloat16 model gets bfloat16 inputs).

    ``dataset`` items are ``(uint8 (3, H, W) tensor, index)``; ``wait_seconds``
    is the time spent waiting for the decoders (decoding the model did not hide).
    """
    device = torch.device(device)
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=stack,
        worker_init_fn=single_thread_worker if workers else None,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    tick = time.perf_counter()
    for images, indices in loader:
        wait = time.perf_counter() - tick
        x = (images.to(device, non_blocking=True).float().div_(255) - mean_t) / std_t
        yield x.to(dtype).contiguous(memory_format=memory_format), indices, wait
        tick = time.perf_counter()
