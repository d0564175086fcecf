"""Run a classifier on a stimulus set: its 16-class decision on every image, and the cue-conflict shape bias."""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from .._model import model_device, model_dtype
from ..distributed import current, gather, in_index_order, shard
from .batches import IMAGENET_MEAN, IMAGENET_STD, inference, model_normalization, stream_batches
from .categories import decisions
from .dataset import CueConflictDataset
from .metrics import ShapeBiasResult, Trial, shape_bias
from .stimuli import Stimuli

__all__ = ["Evaluation", "evaluate_model", "stimulus_trials", "cue_conflict_trials", "IMAGENET_MEAN", "IMAGENET_STD",
           "model_normalization"]


@dataclass
class Evaluation:
    result: ShapeBiasResult | None  # the shape bias, on cue-conflict; None on a shape-only set
    trials: list[Trial]
    seconds: float
    data_seconds: float  # waiting for decoded batches (decode not hidden by the model)
    model_seconds: float
    dataset: str = "cue-conflict"

    @property
    def accuracy(self) -> float:
        """16-class accuracy: the fraction of images decided as their (shape) category."""
        return sum(t.decision == t.shape for t in self.trials) / len(self.trials)


def evaluate_model(
    model: nn.Module,
    data: Stimuli | str,
    *,
    name: str = "model",
    batch_size: int = 32,
    workers: int = 2,
    mean=None,
    std=None,
    device: str | torch.device | None = None,
    progress: bool = True,
    channels_last: bool = True,
) -> Evaluation:
    """Decisions of ``model`` (1000 ImageNet logits) on every stimulus of ``data`` (a
    :class:`Stimuli` set; a folder is read as cue-conflict), and its shape bias on cue-conflict.

    Under torchrun each process runs its shard of the stimuli and every
    process gets all the trials, in stimulus order (``topk_plugin.distributed``).

    Images stream from ``workers`` decoding processes; each batch is
    normalised with ``mean``/``std`` (default: the model's own, see
    :func:`model_normalization`) and cast to the model's dtype on ``device``
    (default: the model's device; another device moves the model there for the
    run). ``channels_last`` runs the model in that memory format (about 1.7x
    faster on these CPUs, also the fast path of cuDNN). The model comes back as
    it was: same tensors, device, memory format and mode.
    """
    dataset = data if isinstance(data, Stimuli) else CueConflictDataset(data)
    if mean is None or std is None:
        mean, std = model_normalization(model)
    device = torch.device(device) if device is not None else model_device(model)
    dtype = model_dtype(model)
    env = current()  # under torchrun: this process' shard, then every shard's trials
    start = time.perf_counter()

    def work():
        trials, data_seconds, model_seconds = [], 0.0, 0.0
        batches = stream_batches(shard(dataset, env), batch_size=batch_size, workers=workers, device=device,
                                 mean=mean, std=std, channels_last=channels_last, dtype=dtype)
        with inference(model, channels_last, device), tqdm(total=len(dataset), desc=f"{dataset.name} {name}", unit="img",
                                                    disable=not (progress and env.main)) as bar:
            for x, indices, wait in batches:
                data_seconds += wait
                got = time.perf_counter()
                logits = model(x)
                if logits.ndim != 2 or logits.shape[1] != 1000:
                    raise ValueError(
                        f"{name} returned shape {tuple(logits.shape)}; the 16-class decisions need 1000 ImageNet logits"
                    )
                trials += zip(indices.tolist(), stimulus_trials(dataset, indices, logits, name), strict=True)
                model_seconds += time.perf_counter() - got
                bar.update(len(indices) * env.world)
        return trials, data_seconds, model_seconds

    parts = gather(env, work)
    trials = in_index_order(p[0] for p in parts)
    seconds = time.perf_counter() - start
    result = None if dataset.shape_only else shape_bias(trials, name)
    return Evaluation(result, trials, seconds, parts[env.rank][1], parts[env.rank][2], dataset.name)


def stimulus_trials(dataset: Stimuli, indices: torch.Tensor, logits: torch.Tensor, name: str) -> list[Trial]:
    """One ``Trial`` per image: its 16-class decision from 1000-class ``logits``."""
    trials = []
    for index, decision in zip(indices.tolist(), decisions(logits.float().cpu()), strict=True):
        image, shape, texture = dataset.labels(index)
        trials.append(Trial(image, shape, texture, decision, name))
    return trials


cue_conflict_trials = stimulus_trials  # the name it had when cue-conflict was the only set
