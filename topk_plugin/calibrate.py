"""``calibrate``: measure the dataset constants of the ops that need them, on unlabeled images.

* ``fill="shift"`` Top-K layers: the shift is the dataset mean, per channel, of
  what Top-K removes (``x - spatial_topk(x, k)`` over images and positions), so
  the sparsified channel keeps its dataset mean (:class:`RemovedMean`).
* ``op="stats-norm"`` layers: ``mean`` and ``std`` are the means over images of
  each image's per-channel spatial mean and standard deviation
  (:class:`ChannelStatistics`).

They are measured layer by layer in forward order: the earlier layers are
calibrated first and run as at inference while a later one is measured. That is
one pass over the images per calibrated layer, each pass stopping at the layer it
measures.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from tqdm.auto import tqdm

from ._model import model_device, model_dtype
from .attachment import sparsified_layers
from .functional import spatial_topk
from .modules import ChannelStatsNorm, TopK
from .stats_norm import channel_stats

__all__ = ["calibrate", "RemovedMean", "ChannelStatistics", "needs_calibration", "measurement"]


class _Reached(Exception):
    """Raised by the measuring hook: the rest of the forward is not needed."""


class RemovedMean:
    """Running per-channel mean of what ``op`` (as with ``fill="zero"``) removes: its shift."""

    def __init__(self, op: TopK):
        options = {**op.options(), "fill": "zero"}
        options.pop("shift", None)
        self.options, self.total, self.count = options, 0.0, 0

    def add(self, x: torch.Tensor) -> None:
        removed = x - spatial_topk(x, **self.options)
        c_dim = self.options["channel_dim"] % x.ndim
        self.total = self.total + removed.sum(dim=[d for d in range(x.ndim) if d != c_dim], dtype=torch.float64)
        self.count += x.numel() // x.shape[c_dim]

    def value(self) -> torch.Tensor:
        if not self.count:
            raise ValueError("the layer never ran on the calibration images (are there any images?)")
        return self.total / self.count

    @staticmethod
    def assign(op: TopK, value) -> None:
        op.shift = value

    @staticmethod
    def current(op: TopK):
        return op.shift


class ChannelStatistics:
    """Running per-channel means, over images, of each image's spatial mean and standard deviation:
    the ``mean`` and ``std`` of a ``ChannelStatsNorm`` (summed in float64)."""

    def __init__(self, op: ChannelStatsNorm):
        self.channel_dim, self.mean_sum, self.std_sum, self.count = op.channel_dim, 0.0, 0.0, 0

    def add(self, x: torch.Tensor) -> None:
        mu, sd = channel_stats(x, self.channel_dim)
        self.mean_sum = self.mean_sum + mu.sum(dim=0, dtype=torch.float64)
        self.std_sum = self.std_sum + sd.sum(dim=0, dtype=torch.float64)
        self.count += x.shape[0]

    def value(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.count:
            raise ValueError("the layer never ran on the calibration images (are there any images?)")
        return self.mean_sum / self.count, self.std_sum / self.count

    @staticmethod
    def assign(op: ChannelStatsNorm, value) -> None:
        op.mean, op.std = (None, None) if value is None else value

    @staticmethod
    def current(op: ChannelStatsNorm):
        return None if op.mean is None else (op.mean, op.std)


def needs_calibration(op) -> bool:
    """Whether ``op`` has dataset constants that :func:`calibrate` measures."""
    return isinstance(op, ChannelStatsNorm) or (isinstance(op, TopK) and op.fill == "shift")


def _accumulator(op) -> type[RemovedMean] | type[ChannelStatistics]:
    return ChannelStatistics if isinstance(op, ChannelStatsNorm) else RemovedMean


def measurement(op) -> RemovedMean | ChannelStatistics:
    """A fresh accumulator of ``op``'s constants (``add`` batches, then ``value``; ``assign`` sets them)."""
    return _accumulator(op)(op)


def _batches(images):
    if isinstance(images, torch.Tensor):
        return [images]
    if iter(images) is images:  # a generator: read once, used once per pass
        return list(images)
    return images


def _tensor(batch) -> torch.Tensor:
    if isinstance(batch, (tuple, list)):  # (images, labels) from a DataLoader
        batch = batch[0]
    if not isinstance(batch, torch.Tensor):
        raise TypeError(f"calibrate expects batches of image tensors (or (images, labels) pairs), got {type(batch).__name__}")
    return batch


def calibrate(
    model: nn.Module,
    images: torch.Tensor | Iterable[torch.Tensor] | Iterable[tuple[torch.Tensor, ...]],
    *,
    layers: Iterable[str] | None = None,
    progress: bool = False,
) -> dict:
    """Set the constants of every ``fill="shift"`` and ``op="stats-norm"`` layer of ``model``
    (or of ``layers``) from ``images``.

    Args:
        model: a model sparsified with ``fill="shift"`` or ``op="stats-norm"`` (module or hook method).
        images: input batches as the model takes them (normalised): one tensor,
            a list of tensors, or a ``DataLoader`` (labels, if any, are ignored).
        layers: names of the layers to (re)calibrate; default all of them.
            The others keep their constants and run as they are.
        progress: show a tqdm bar.

    Returns ``{layer name: shift}`` for shift layers and ``{layer name: (mean, std)}``
    for stats-norm layers (float64, one value per channel). The model runs in eval
    mode without gradients and is left in the mode it was in. If calibration fails
    (or is interrupted), every layer keeps the constants it had.
    """
    to_calibrate = {name: op for name, op in sparsified_layers(model).items() if needs_calibration(op)}
    if not to_calibrate:
        raise ValueError("no layer of the model has fill='shift' or op='stats-norm': sparsify(model, layers, k, "
                         "fill='shift') or sparsify(model, layers, op='stats-norm', strength=...) first")
    names = list(to_calibrate) if layers is None else [layers] if isinstance(layers, str) else list(layers)
    unknown = [name for name in names if name not in to_calibrate]
    if unknown:
        raise ValueError(f"layers {unknown} have no fill='shift' or stats-norm op; the layers to calibrate in this "
                         f"model: {list(to_calibrate)}")
    batches = _batches(images)
    device, dtype = model_device(model), model_dtype(model)
    kinds = {name: _accumulator(to_calibrate[name]) for name in names}
    previous = {name: kinds[name].current(to_calibrate[name]) for name in names}  # put back if calibration fails
    for name in names:
        kinds[name].assign(to_calibrate[name], None)
    pending = dict.fromkeys(names)
    result = {}
    was_training = model.training
    model.eval()
    bar = tqdm(total=len(names), desc="calibrating layers", unit="layer", disable=not progress)
    try:
        while pending:
            means: dict[str, RemovedMean | ChannelStatistics] = {}

            def measure(name, means=means):
                def hook(op, args):
                    means.setdefault(name, measurement(op)).add(args[0])
                    raise _Reached

                return hook

            handles = [to_calibrate[name].register_forward_pre_hook(measure(name)) for name in pending]
            try:
                with torch.no_grad():
                    for batch in batches:
                        x = _tensor(batch)
                        try:
                            model(x.to(device=device, dtype=dtype))
                        except _Reached:
                            pass
            finally:
                for handle in handles:
                    handle.remove()
            if not means:
                raise ValueError(f"layers {list(pending)} never ran on the calibration images "
                                 "(are they used in forward? are there any images?)")
            for name, mean in means.items():  # normally the one pending layer reached first
                result[name] = mean.value()
                mean.assign(to_calibrate[name], result[name])
                del pending[name]
                bar.update(1)
    except BaseException:
        for name, constants in previous.items():
            kinds[name].assign(to_calibrate[name], constants)
        raise
    finally:
        bar.close()
        model.train(was_training)
    return result
