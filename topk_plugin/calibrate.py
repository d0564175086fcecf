"""``calibrate``: measure the per-channel shift of ``fill="shift"`` layers on unlabeled images.

A layer's shift is the dataset mean, per channel, of what its Top-K removes
(``x - spatial_topk(x, k)`` over images and positions), so the sparsified
channel keeps its dataset mean. It is measured layer by layer in forward order:
the earlier shift layers are calibrated first and run as at inference while a
later one is measured. That is one pass over the images per shift layer, each
pass stopping at the layer it measures.
"""
from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from ._model import model_device, model_dtype
from .attachment import sparsified_layers
from .functional import spatial_topk
from .modules import TopK

__all__ = ["calibrate", "RemovedMean"]


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


def calibrate(model: nn.Module, images, *, layers=None, progress: bool = False) -> dict[str, torch.Tensor]:
    """Set the ``shift`` of every ``fill="shift"`` layer of ``model`` (or of ``layers``) from ``images``.

    Args:
        model: a model sparsified with ``fill="shift"`` (module or hook method).
        images: input batches as the model takes them (normalised): one tensor,
            a list of tensors, or a ``DataLoader`` (labels, if any, are ignored).
        layers: names of the shift layers to (re)calibrate; default all of them.
            The others keep their shift and run as they are.
        progress: show a tqdm bar.

    Returns ``{layer name: shift}`` (float64, one value per channel). The model
    runs in eval mode without gradients and is left in the mode it was in. If
    calibration fails (or is interrupted), every layer keeps the shift it had.
    """
    shifted = {name: op for name, op in sparsified_layers(model).items()
               if isinstance(op, TopK) and op.fill == "shift"}
    if not shifted:
        raise ValueError("no layer of the model has fill='shift': sparsify(model, layers, k, fill='shift') first")
    names = list(shifted) if layers is None else [layers] if isinstance(layers, str) else list(layers)
    unknown = [name for name in names if name not in shifted]
    if unknown:
        raise ValueError(f"layers {unknown} have no fill='shift' op; shift layers of this model: {list(shifted)}")
    batches = _batches(images)
    device, dtype = model_device(model), model_dtype(model)
    previous = {name: shifted[name].shift for name in names}  # put back if calibration fails
    for name in names:
        shifted[name].shift = None
    pending = dict.fromkeys(names)
    result = {}
    was_training = model.training
    model.eval()
    bar = tqdm(total=len(names), desc="calibrating shift layers", unit="layer", disable=not progress)
    try:
        while pending:
            means: dict[str, RemovedMean] = {}

            def measure(name, means=means):
                def hook(op, args):
                    means.setdefault(name, RemovedMean(op)).add(args[0])
                    raise _Reached

                return hook

            handles = [shifted[name].register_forward_pre_hook(measure(name)) for name in pending]
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
                shifted[name].shift = result[name] = mean.value()
                del pending[name]
                bar.update(1)
    except BaseException:
        for name, shift in previous.items():
            shifted[name].shift = shift
        raise
    finally:
        bar.close()
        model.train(was_training)
    return result
