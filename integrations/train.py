"""Classification training with Top-K (paper section 4.3, SPEC sections 2 and 8): ``topk-plugin train``.

The recipe: any registry model name (``resnet18_cifar_topk20``, its mean form
``resnet18_cifar_topk20mean``, ``resnet18`` dense, ...) trained from scratch on
an ImageFolder with random-resized crops and flips, SGD (lr 0.1, momentum 0.9,
weight decay 5e-4), a cosine schedule over the epochs (stepped per epoch),
batch 32, mixed precision on CUDA.

Files in ``out`` (only the main process writes): ``config.json`` (written
with the first checkpoint, so a run that fails on bad input leaves nothing),
``checkpoint.pt`` (full state after each epoch, replaced atomically),
``metrics.csv`` / ``metrics.json`` (one row per epoch), ``model.pt`` (final
weights, classes and how to rebuild: :func:`load_trained`), ``results.json``
(final val, stylized val, shape bias) and model-vs-human's trial CSV when
shape bias was measured.

Resume: ``resume=True`` restores model, optimizer, scheduler, AMP scaler, the
torch/numpy/python RNG states and the epoch; data order and augmentation are
pure functions of (seed, epoch, sample) (:mod:`.train_data`). On the CPU an
interrupted and resumed run therefore ends with bit-identical weights; a run
stopped mid-epoch redoes that epoch.

Several processes (``torchrun --nproc_per_node N``): the global batch stays
``batch_size`` (``batch_size / N`` per process) and the global batches hold
the same images as with one process; only BatchNorm statistics are per
process (as usual with DDP) and sums run in another order.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from .. import distributed as dist
from .._io import atomic_write_json, atomic_write_text
from ..shape_bias import write_trials
from ..shape_bias.batches import model_normalization, single_thread_worker
from ..zoo import create_model
from ._checkpoint import atomic_torch_save, check_fixed_settings, load_torch_checkpoint, rng_state, set_rng_state
from .train_data import FolderDataset, ShardSampler, check_same_classes, eval_transform, train_transform

__all__ = ["TrainConfig", "train", "build_model", "load_trained", "evaluate_folder", "CHECKPOINT_FORMAT", "MODEL_FORMAT"]

CHECKPOINT_FORMAT = "topk-plugin-train-checkpoint/1"
MODEL_FORMAT = "topk-plugin-trained-model/1"
METRIC_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds", "images_per_second")
_CHECKPOINT_KEYS = ("config", "epoch", "model", "optimizer", "scheduler", "scaler", "rng", "metrics")
# Settings that define a run: a resumed run must not change them.
_FIXED_ON_RESUME = ("model", "classes", "epochs", "batch_size", "lr", "momentum", "weight_decay", "img_size", "seed", "amp")


@dataclass
class TrainConfig:
    model: str
    data: str
    val: str | None = None
    out: str = "train-run"
    epochs: int = 50
    batch_size: int = 32
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    img_size: int = 224
    seed: int = 0
    workers: int = 2
    amp: bool = True  # mixed precision; used on CUDA only
    device: str | None = None
    resume: bool = False
    stylized_val: str | None = None
    cue_conflict: str | None = None
    eval_every: int = 1  # val accuracy every N epochs (and always after the last)

    def check(self) -> None:
        for name in ("epochs", "batch_size", "img_size", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.img_size < 8:
            raise ValueError(f"--img-size must be >= 8 px, got {self.img_size}")
        if self.lr <= 0 or self.momentum < 0 or self.weight_decay < 0:
            raise ValueError("--lr must be > 0, --momentum and --weight-decay >= 0")
        if self.workers < 0:
            raise ValueError("--workers must be >= 0")

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for key in ("data", "val", "stylized_val", "cue_conflict", "out"):
            if d[key] is not None:
                d[key] = str(Path(d[key]).resolve())
        return d


# --- models ---------------------------------------------------------------------------------


def build_model(name: str, num_classes: int, img_size: int) -> nn.Module:
    """``create_model(name)`` with a ``num_classes`` head, randomly initialised.

    ``img_size`` reaches models that take it (``resnet18_cifar``'s head, timm
    ViTs); the others are size-agnostic and get it only through the data.
    """
    try:
        return create_model(name, num_classes=num_classes, img_size=img_size)
    except TypeError as error:
        if "img_size" not in str(error):
            raise
    return create_model(name, num_classes=num_classes)


def load_trained(path, device="cpu") -> tuple[nn.Module, dict]:
    """``(model in eval mode, info)`` from a ``model.pt`` written by :func:`train`."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(saved, dict) or saved.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path} is not a model.pt written by topk-plugin train")
    model = build_model(saved["model"], len(saved["classes"]), saved["img_size"])
    model.load_state_dict(saved["state_dict"])
    info = {k: v for k, v in saved.items() if k != "state_dict"}
    return model.to(device).eval(), info


def _state_dict(model: nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _grad_scaler(enabled: bool):
    """CUDA loss scaling for mixed precision (``torch.amp`` from torch 2.3, ``torch.cuda.amp`` before)."""
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)


def _sync_buffers(env: dist.DistEnv, model: nn.Module) -> None:
    """Rank 0's BatchNorm statistics everywhere: what is evaluated is what is saved."""
    if env.world > 1:
        for buffer in model.buffers():
            torch.distributed.broadcast(buffer, 0)


# --- evaluation -----------------------------------------------------------------------------


def _loader(dataset, batch_size, sampler, workers, device, seed=0) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      pin_memory=device.type == "cuda", worker_init_fn=single_thread_worker if workers else None,
                      generator=torch.Generator().manual_seed(seed), persistent_workers=False)


def evaluate_folder(model: nn.Module, dataset, env: dist.DistEnv | None = None, *, batch_size: int = 64,
                    workers: int = 2, amp: bool = False, progress: bool = False, desc: str = "eval") -> dict:
    """Top-1 (and top-5 with >= 5 classes) accuracy and mean loss, split over the processes."""
    env = env or dist.setup()
    sampler = ShardSampler(len(dataset), rank=env.rank, world=env.world, shuffle=False)
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64)  # loss, top1, top5, n
    from tqdm import tqdm

    try:
        with torch.no_grad(), torch.autocast(env.device.type, dtype=torch.float16, enabled=amp):
            for x, y in tqdm(_loader(dataset, batch_size, sampler, workers, env.device), desc=desc, unit="batch",
                             disable=not progress, leave=False, dynamic_ncols=True):
                x, y = x.to(env.device, non_blocking=True), y.to(env.device, non_blocking=True)
                logits = model(x).float()
                top = logits.topk(min(5, logits.shape[1]), dim=1).indices
                sums += torch.tensor([F.cross_entropy(logits, y, reduction="sum").item(),
                                      (top[:, 0] == y).sum().item(), (top == y[:, None]).any(1).sum().item(), len(y)],
                                     dtype=torch.float64)
    finally:
        model.train(was_training)
    loss, top1, top5, n = dist.all_sum(env, sums.tolist())
    result = {"loss": loss / n, "top1": top1 / n, "n": int(n)}
    if len(dataset.classes) >= 5:
        result["top5"] = top5 / n
    return result


# --- files ----------------------------------------------------------------------------------


def _write_metrics(out: Path, rows: list[dict]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=METRIC_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in METRIC_COLUMNS})
    atomic_write_text(out / "metrics.csv", text.getvalue(), newline="")
    atomic_write_json(out / "metrics.json", rows)


def _open_checkpoint(config: TrainConfig, path: Path) -> dict | None:
    if not config.resume:
        if path.exists():
            raise ValueError(f"{path.parent} already holds a run (checkpoint.pt): pass --resume to continue it, "
                             "or use another --out")
        return None
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {path}")
    return load_torch_checkpoint(path, CHECKPOINT_FORMAT, _CHECKPOINT_KEYS)


# --- the loop -------------------------------------------------------------------------------


def train(config: TrainConfig, *, progress: bool = True, log=print, on_epoch_end=None) -> dict:
    """Train (or resume) one run; returns a summary dict (see the module docstring).

    ``on_epoch_end(epoch, row)`` is called after each epoch's checkpoint is on
    disk (every process; ``row`` is that epoch's metrics).
    """
    config.check()
    env = dist.setup(config.device)
    try:
        quiet = lambda *a, **k: None  # noqa: E731
        return _train(config, env, progress and env.main, log if env.main else quiet, on_epoch_end)
    finally:
        dist.teardown(env)


def _datasets(config: TrainConfig):
    """Training set plus optional val and stylized val, checked to share the class folders."""
    data = FolderDataset(config.data, None, seed=config.seed, what="--data")
    extra = {}
    for key, flag in (("val", "--val"), ("stylized_val", "--stylized-val")):
        if getattr(config, key):
            extra[key] = FolderDataset(getattr(config, key), None, what=flag)
            check_same_classes(data, extra[key])
    return data, extra


def _cue_conflict_root(config: TrainConfig, classes: list[str]):
    """Where to measure shape bias, or ``(None, reason)``; refuses a useless --cue-conflict up front."""
    from ..shape_bias import find_cue_conflict
    from ..shape_bias.dataset import CueConflictError, scan_cue_conflict
    from .train_cue import MIN_CATEGORIES, covered_categories

    covered = list(covered_categories(classes))
    if len(covered) < MIN_CATEGORIES:
        reason = (f"the class folders cover {len(covered)} of the 16 cue-conflict categories ({', '.join(covered) or 'none'});"
                  f" shape bias needs >= {MIN_CATEGORIES} (class folders named by ImageNet wnid, e.g. n02102040)")
        if config.cue_conflict:
            raise ValueError(f"--cue-conflict: {reason}")
        return None, reason
    try:
        root = find_cue_conflict(config.cue_conflict, download=False)
        scan_cue_conflict(root)
    except CueConflictError as error:
        if config.cue_conflict:
            raise
        return None, f"pass --cue-conflict DIR to measure it; {error}"
    return root, None


def _train(config: TrainConfig, env: dist.DistEnv, progress: bool, log, on_epoch_end) -> dict:
    from tqdm import tqdm

    out = Path(config.out)
    ckpt_path = out / "checkpoint.pt"
    saved = _open_checkpoint(config, ckpt_path)
    if config.batch_size % env.world:
        raise ValueError(f"--batch-size {config.batch_size} must be divisible by the {env.world} processes")
    per_rank = config.batch_size // env.world

    data, extra = _datasets(config)
    classes = data.classes
    cue_root, cue_reason = _cue_conflict_root(config, classes)
    cfg = {**config.as_dict(), "classes": classes, "world_size": env.world}
    if saved is not None:
        check_fixed_settings(saved["config"], cfg, _FIXED_ON_RESUME)

    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed)
    model = build_model(config.model, len(classes), config.img_size).to(env.device)
    mean, std = model_normalization(model)
    data.transform = train_transform(config.img_size, mean, std)
    for dataset in extra.values():
        dataset.transform = eval_transform(config.img_size, mean, std)

    use_amp = config.amp and env.device.type == "cuda"
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    scaler = _grad_scaler(use_amp)
    start_epoch, rows = 0, []
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        scaler.load_state_dict(saved["scaler"])
        set_rng_state(saved["rng"])
        start_epoch, rows = int(saved["epoch"]), list(saved["metrics"])
        del saved
        log(f"resuming {out} after epoch {start_epoch}/{config.epochs}")

    net = model
    if env.world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    sampler = ShardSampler(len(data), rank=env.rank, world=env.world, seed=config.seed, batch_per_rank=per_rank)
    loader = _loader(data, per_rank, sampler, config.workers, env.device, config.seed)
    eval_args = dict(batch_size=max(per_rank, 1), workers=config.workers, amp=use_amp)

    def checkpoint(epoch: int) -> None:
        if epoch == start_epoch + 1:  # this run's settings, beside its first checkpoint
            atomic_write_json(out / "config.json", cfg)
        atomic_torch_save({
            "format": CHECKPOINT_FORMAT, "config": cfg, "epoch": epoch, "model": _state_dict(model),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
            "rng": rng_state(), "metrics": rows,
        }, ckpt_path)

    start_time, last_val = time.perf_counter(), None
    try:
        for epoch in range(start_epoch, config.epochs):
            tick = time.perf_counter()
            data.set_epoch(epoch)
            sampler.set_epoch(epoch)
            lr = optimizer.param_groups[0]["lr"]
            model.train()
            sums = torch.zeros(3, dtype=torch.float64, device=env.device)  # loss, correct, n
            for x, y in tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", disable=not progress,
                             leave=False, dynamic_ncols=True):
                x, y = x.to(env.device, non_blocking=True), y.to(env.device, non_blocking=True)
                with torch.autocast(env.device.type, dtype=torch.float16, enabled=use_amp):
                    logits = net(x)
                    loss = F.cross_entropy(logits, y)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                with torch.no_grad():
                    sums += torch.stack([loss.detach().double() * len(y), (logits.argmax(1) == y).sum().double(),
                                         torch.tensor(float(len(y)), dtype=torch.float64, device=env.device)])
            scheduler.step()
            loss_sum, correct, n = dist.all_sum(env, sums.tolist())
            row = {"epoch": epoch + 1, "lr": lr, "train_loss": loss_sum / n, "train_acc": correct / n,
                   "val_loss": None, "val_acc": None}
            _sync_buffers(env, model)
            if "val" in extra and ((epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs):
                val = evaluate_folder(model, extra["val"], env, progress=progress, desc="val", **eval_args)
                row.update(val_loss=val["loss"], val_acc=val["top1"])
                last_val = val if epoch + 1 == config.epochs else None
            seconds = time.perf_counter() - tick
            row.update(seconds=round(seconds, 3), images_per_second=round(n / seconds, 2))
            rows.append(row)
            if env.main:
                checkpoint(epoch + 1)
                _write_metrics(out, rows)
            dist.barrier(env)
            log(f"epoch {epoch + 1}/{config.epochs}: lr {lr:.4g} train loss {row['train_loss']:.4f} acc "
                f"{row['train_acc']:.4f}" + (f" | val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f}"
                                             if row["val_acc"] is not None else "") + f" | {seconds:.1f} s")
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, row)
    except KeyboardInterrupt:  # the CLI prints this one line
        if not rows:
            raise KeyboardInterrupt("before the first epoch ended; nothing was saved") from None
        raise KeyboardInterrupt(f"{ckpt_path} holds epoch {rows[-1]['epoch']}/{config.epochs}; "
                                "continue with --resume") from None

    results, trials = _final_evaluation(config, env, model, extra, classes, cue_root, cue_reason, last_val, mean,
                                        std, progress, eval_args)
    if env.main:  # the trials CSV only beside the model and results.json that describe it
        atomic_torch_save({"format": MODEL_FORMAT, "model": config.model, "classes": classes,
                           "img_size": config.img_size, "epochs": config.epochs, "mean": list(mean), "std": list(std),
                           "state_dict": _state_dict(model)}, out / "model.pt")
        if trials is not None:
            results["shape_bias"]["trials_csv"] = str(write_trials(trials, config.model, out))
        atomic_write_json(out / "results.json", results)
    dist.barrier(env)
    return {"out": str(out), "epoch": config.epochs, "epochs_run": config.epochs - start_epoch,
            "seconds": round(time.perf_counter() - start_time, 3), "device": str(env.device),
            "world_size": env.world, "checkpoint": str(ckpt_path), "model_file": str(out / "model.pt"),
            "last_epoch": rows[-1] if rows else None, "results": results}


def _final_evaluation(config, env, model, extra, classes, cue_root, cue_reason, last_val, mean, std, progress,
                      eval_args) -> tuple[dict, list | None]:
    """(results, cue-conflict trials or None): val (the last epoch's numbers if it had them), stylized val,
    shape bias on cue-conflict."""
    from .train_cue import cue_conflict_shape_bias

    results = {"model": config.model, "classes": classes, "epochs": config.epochs, "img_size": config.img_size}
    trials = None
    if "val" in extra:  # the last epoch's evaluation if this run made it, else anew (e.g. resumed after the end)
        results["val"] = last_val or evaluate_folder(model, extra["val"], env, progress=progress, desc="val", **eval_args)
    if "stylized_val" in extra:
        results["stylized_val"] = evaluate_folder(model, extra["stylized_val"], env, progress=progress,
                                                  desc="stylized val", **eval_args)
    if cue_root is None:
        results["shape_bias"] = {"skipped": cue_reason}
    elif env.main:
        measured = cue_conflict_shape_bias(model, classes, config.img_size, cue_root, mean=mean, std=std,
                                           name=config.model, workers=config.workers, progress=progress)
        results["shape_bias"], trials = measured["result"], measured["trials"]
    dist.barrier(env)
    return results, trials
