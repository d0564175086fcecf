"""Training runner for FastGAN with a Top-K generator (``topk-plugin fastgan train``).

Why our own loop and not upstream's ``train.py``: importing it builds an LPIPS
loss on CUDA at module level, it hard-codes ``cuda:0`` and ``DataParallel``,
its ``operation.py`` imports ``lmdb`` at the top, its loader skips ``.JPEG``,
and its checkpoints lack the RNG and data position needed to resume. So this
loop drives upstream's own ``Generator``, ``Discriminator``, ``weights_init``
and ``DiffAugment`` (imported from the user's checkout) with upstream's
recipe: hinge loss with random margins, the discriminator's reconstruction
loss on real images (whole, 128 px, one random quarter), DiffAugment
``color,translation``, Adam 2e-4 (0.5, 0.999), EMA 0.999 of the generator's
parameters, nz 256. Differences: the reconstruction loss is upstream's LPIPS
(VGG) by default but can be L1 (``recon_loss="l1"``) where LPIPS' VGG weights
cannot be downloaded; everything runs on CPU or GPU; checkpoints resume
exactly (model, optimizers, EMA, iteration, RNG states, data position).

Files in ``out``: ``config.json``, ``checkpoint.pt`` (latest full state,
replaced atomically), ``generators/generator_<iter>.pt`` (EMA generator +
config: what ``fastgan sample`` and ``fid`` take), ``samples/<iter>.jpg``
(grids from fixed noise with the EMA weights), ``log.jsonl``.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from .._io import atomic_write_json
from ..functional import validate_k
from . import fastgan as fg
from ._checkpoint import atomic_torch_save, check_fixed_settings, load_torch_checkpoint
from ._checkpoint import rng_state as _rng_state
from ._checkpoint import set_rng_state as _set_rng_state

__all__ = ["TrainConfig", "train", "ImageFolderFlat", "find_images", "IMAGE_EXTENSIONS", "atomic_torch_save"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# Settings that define a run: a resumed run must not change them.
_FIXED_ON_RESUME = ("im_size", "nz", "ngf", "ndf", "topk", "layer", "topk_mode", "rank_by", "ties", "noise",
                    "batch_size", "lr", "betas", "ema_decay", "recon_loss", "policy", "seed")


@dataclass
class TrainConfig:
    fastgan_dir: str
    data: str
    out: str = "fastgan-run"
    topk: float = 0.05  # 0: the dense baseline
    layer: str = "feat_32"
    topk_mode: str = "keep"
    rank_by: str = "abs"
    ties: str = "exact"
    im_size: int = 256
    iters: int = 100_000
    batch_size: int = 8
    nz: int = 256
    ngf: int = 64
    ndf: int = 64
    lr: float = 2e-4
    betas: tuple = (0.5, 0.999)
    ema_decay: float = 0.999
    noise: bool = True
    recon_loss: str = "lpips"  # upstream's; "l1" works offline
    policy: str = "color,translation"
    save_every: int = 5000
    sample_every: int = 1000
    log_every: int = 100
    workers: int = 2
    device: str | None = None
    seed: int = 0
    resume: bool = False
    n_fixed: int = 8

    def check(self) -> None:
        if self.im_size not in fg.IM_SIZES:
            raise ValueError(f"--im-size must be one of {fg.IM_SIZES} (FastGAN builds no other size), got {self.im_size}")
        if self.topk:  # 0 or None: dense
            try:
                validate_k(self.topk)
            except (TypeError, ValueError) as error:
                raise ValueError(f"--topk: {error} (0 means dense)") from None
        for name in ("iters", "batch_size", "save_every", "sample_every", "log_every", "nz", "ngf", "ndf", "n_fixed"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.recon_loss not in ("lpips", "l1"):
            raise ValueError(f"recon_loss must be 'lpips' or 'l1', got {self.recon_loss!r}")
        if self.workers < 0:
            raise ValueError("workers must be >= 0")

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        d["fastgan_dir"] = str(Path(self.fastgan_dir).resolve())
        d["data"] = str(Path(self.data).resolve())
        return d


# --- data ---------------------------------------------------------------------------------


def find_images(root) -> list[Path]:
    """Image files under ``root`` (recursive, sorted), any letter case of the extension."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {str(root)!r} does not exist")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise ValueError(
            f"no images found in {str(root)!r} (searched recursively for {', '.join(IMAGE_EXTENSIONS)}, any case)"
        )
    return files


class ImageFolderFlat(Dataset):
    """Every image under a folder, as upstream loads them: squashed to a square, flipped at random."""

    def __init__(self, root, im_size: int, flip: bool = True):
        from torchvision import transforms

        self.files = find_images(root)
        steps = [transforms.Resize((im_size, im_size))]
        if flip:
            steps.append(transforms.RandomHorizontalFlip())
        steps += [transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3)]
        self.transform = transforms.Compose(steps)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, idx):
        from PIL import Image

        with Image.open(self.files[idx]) as img:
            return self.transform(img.convert("RGB"))


def _dataset(data, im_size: int, fastgan_dir) -> Dataset:
    root = Path(data)
    if (root / "data.mdb").is_file():  # upstream's lmdb format: only then is lmdb needed
        from torchvision import transforms

        operation = fg.import_upstream(fastgan_dir, "operation")
        trans = transforms.Compose([transforms.Resize((im_size, im_size)), transforms.RandomHorizontalFlip(),
                                    transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3)])
        return operation.MultiResolutionDataset(str(root), trans, 1024)
    return ImageFolderFlat(root, im_size)


class _InfiniteSampler(Sampler):
    """Endless shuffled indices, a pure function of (seed, position), so a resumed
    run continues with exactly the images the uninterrupted run would have seen."""

    def __init__(self, n: int, seed: int, start: int = 0):
        self.n, self.seed, self.start = n, seed, start

    def __iter__(self):
        pos = self.start
        epoch, perm = None, None
        while True:
            e, i = divmod(pos, self.n)
            if e != epoch:
                epoch = e
                perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + e))
            yield int(perm[i])
            pos += 1

    def __len__(self) -> int:
        return 2**31


# --- checkpoints ------------------------------------------------------------------------------


def _ema_state(g_ema: nn.Module, netG: nn.Module) -> dict:
    """EMA parameters with the live model's buffers (upstream averages parameters only)."""
    with torch.no_grad():
        for b_ema, b in zip(g_ema.buffers(), netG.buffers(), strict=True):
            b_ema.copy_(b)
    return {k: v.detach().cpu() for k, v in g_ema.state_dict().items()}


# --- losses ---------------------------------------------------------------------------------


def _recon_loss(kind: str, fastgan_dir, device: torch.device):
    if kind == "l1":
        return lambda a, b: (a - b).abs().flatten(1).mean(1)
    root = str(fg._checkout(fastgan_dir))
    import sys

    sys.path.insert(0, root)
    try:
        import lpips  # upstream's package inside the checkout

        if not str(Path(lpips.__file__).resolve()).startswith(root):
            raise ImportError(f"'lpips' resolves to {lpips.__file__}, not to the checkout's lpips/ folder")
        percept = lpips.PerceptualLoss(model="net-lin", net="vgg", use_gpu=device.type == "cuda",
                                       gpu_ids=[device.index or 0])
    except Exception as error:  # missing IPython/scikit-image, VGG16 weights not downloadable, ...
        raise RuntimeError(
            f"upstream's LPIPS reconstruction loss could not be set up ({type(error).__name__}: {error}). It needs "
            "the checkout's lpips/ folder, scipy, scikit-image and IPython, and downloads torchvision's VGG16 "
            "ImageNet weights on first use. Install/download those, or pass --recon-loss l1 (offline, "
            "not upstream's recipe)."
        ) from error
    finally:
        sys.path.remove(root)
    return lambda a, b: percept(a, b).flatten()


def _quarter(images: torch.Tensor, part: int) -> torch.Tensor:
    half = images.shape[2] // 2
    rows = slice(0, half) if part < 2 else slice(half, None)
    cols = slice(0, half) if part % 2 == 0 else slice(half, None)
    return images[:, :, rows, cols]


def _resized(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, like.shape[2])


# --- the loop ---------------------------------------------------------------------------------


def _resolve_device(name: str | None) -> torch.device:
    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


def _check_resume(saved: dict, cfg: dict) -> None:
    check_fixed_settings(saved, cfg, _FIXED_ON_RESUME)


def train(config: TrainConfig, *, progress: bool = True, log=print) -> dict:
    """Train (or resume) one FastGAN run; returns a summary dict."""
    from torchvision.utils import save_image
    from tqdm import tqdm

    config.check()
    cfg = config.as_dict()
    out = Path(config.out)
    ckpt_path = out / "checkpoint.pt"
    device = _resolve_device(config.device)

    saved = None
    if config.resume:
        if not ckpt_path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt_path}")
        saved = load_torch_checkpoint(ckpt_path, fg.CHECKPOINT_FORMAT, ("config", "iteration", "g", "d", "rng"))
        _check_resume(saved["config"], cfg)
    elif ckpt_path.exists():
        raise ValueError(f"{out} already holds a run (checkpoint.pt): pass --resume to continue it, or use another --out")

    models = fg.import_upstream(config.fastgan_dir, "models")
    diffaug = fg.import_upstream(config.fastgan_dir, "diffaug")
    dataset = _dataset(config.data, config.im_size, config.fastgan_dir)
    recon = _recon_loss(config.recon_loss, config.fastgan_dir, device)

    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed)
    netG = fg.build_generator(config.fastgan_dir, im_size=config.im_size, ngf=config.ngf, nz=config.nz,
                              topk=config.topk, layer=config.layer, topk_mode=config.topk_mode,
                              rank_by=config.rank_by, ties=config.ties, noise=config.noise)
    netD = models.Discriminator(ndf=config.ndf, im_size=config.im_size)
    netD.apply(models.weights_init)
    netG.to(device)
    netD.to(device)
    g_ema = copy.deepcopy(netG).requires_grad_(False)
    fixed_noise = torch.randn(config.n_fixed, config.nz, generator=torch.Generator().manual_seed(config.seed + 1))
    opt_g = torch.optim.Adam([p for p in netG.parameters() if p.requires_grad], lr=config.lr, betas=tuple(config.betas))
    opt_d = torch.optim.Adam(netD.parameters(), lr=config.lr, betas=tuple(config.betas))

    step = 0
    if saved is not None:
        netG.load_state_dict(saved["g"])
        netD.load_state_dict(saved["d"])
        g_ema.load_state_dict(saved["g_ema"])
        opt_g.load_state_dict(saved["opt_g"])
        opt_d.load_state_dict(saved["opt_d"])
        fixed_noise = saved["fixed_noise"]
        step = int(saved["iteration"])
        _set_rng_state(saved["rng"])
        del saved
    atomic_write_json(out / "config.json", cfg)

    loader = DataLoader(dataset, batch_size=config.batch_size,
                        sampler=_InfiniteSampler(len(dataset), config.seed, step * config.batch_size),
                        num_workers=config.workers, pin_memory=device.type == "cuda", drop_last=False,
                        generator=torch.Generator().manual_seed(config.seed + step),
                        persistent_workers=False)
    batches = iter(loader)
    G, D = netG, netD
    if device.type == "cuda" and torch.cuda.device_count() > 1:
        G, D = nn.DataParallel(netG), nn.DataParallel(netD)
    aug = lambda x: diffaug.DiffAugment(x, policy=config.policy)  # noqa: E731
    cuda_devices = [device.index or 0] if device.type == "cuda" else []

    def checkpoint(it: int) -> None:
        state_ema = _ema_state(g_ema, netG)
        atomic_torch_save({"format": fg.GENERATOR_FORMAT, "config": cfg, "iteration": it, "g_ema": state_ema},
                          out / "generators" / f"generator_{it:06d}.pt")
        atomic_torch_save({
            "format": fg.CHECKPOINT_FORMAT, "config": cfg, "iteration": it,
            "g": {k: v.detach().cpu() for k, v in netG.state_dict().items()},
            "d": {k: v.detach().cpu() for k, v in netD.state_dict().items()},
            "g_ema": state_ema, "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
            "fixed_noise": fixed_noise, "rng": _rng_state(),
        }, ckpt_path)

    def sample_grid(it: int) -> None:
        _ema_state(g_ema, netG)
        with torch.random.fork_rng(devices=cuda_devices), torch.no_grad(), fg.batchnorm_mode(g_ema, "batch"):
            images = g_ema(fixed_noise.to(device))[0]
        save_image(images.add(1).mul(0.5), out / "samples" / f"{it:06d}.jpg", nrow=4)

    (out / "samples").mkdir(parents=True, exist_ok=True)
    start_step, start_time, last_saved = step, time.perf_counter(), step
    losses = {}
    bar = tqdm(total=config.iters, initial=step, disable=not progress, desc="fastgan", unit="it", dynamic_ncols=True)
    try:
        while step < config.iters:
            real = next(batches).to(device, non_blocking=True)
            z = torch.randn(real.shape[0], config.nz, device=device)
            fakes = [aug(f) for f in G(z)]
            real = aug(real)

            opt_d.zero_grad(set_to_none=True)
            part = random.randint(0, 3)
            pred, (rec_big, rec_small, rec_part) = D(real, "real", part=part)
            loss_real = F.relu(torch.rand_like(pred) * 0.2 + 0.8 - pred).mean()
            loss_rec = (recon(rec_big, _resized(real, rec_big)).sum() + recon(rec_small, _resized(real, rec_small)).sum()
                        + recon(rec_part, _resized(_quarter(real, part), rec_part)).sum())
            (loss_real + loss_rec).backward()
            pred_fake = D([f.detach() for f in fakes], "fake")
            loss_fake = F.relu(torch.rand_like(pred_fake) * 0.2 + 0.8 + pred_fake).mean()
            loss_fake.backward()
            opt_d.step()

            opt_g.zero_grad(set_to_none=True)
            loss_g = -D(fakes, "fake").mean()
            loss_g.backward()
            opt_g.step()
            with torch.no_grad():
                for p_ema, p in zip(g_ema.parameters(), netG.parameters(), strict=True):
                    p_ema.lerp_(p.detach(), 1 - config.ema_decay)

            step += 1
            bar.update(1)
            if step % config.log_every == 0 or step == config.iters:
                losses = {"iteration": step, "loss_d_real": loss_real.item(), "loss_d_rec": loss_rec.item(),
                          "loss_d_fake": loss_fake.item(), "loss_g": loss_g.item(),
                          "seconds": round(time.perf_counter() - start_time, 3)}
                bar.set_postfix(d=f"{losses['loss_d_real'] + losses['loss_d_fake']:.3f}", g=f"{losses['loss_g']:.3f}")
                with open(out / "log.jsonl", "a") as f:
                    f.write(json.dumps(losses) + "\n")
            if step % config.sample_every == 0 or step == config.iters:
                sample_grid(step)
            if step % config.save_every == 0 or step == config.iters:
                checkpoint(step)
                last_saved = step
    except KeyboardInterrupt:
        if step > last_saved:
            checkpoint(step)
        raise KeyboardInterrupt(f"{ckpt_path} holds iteration {step}; continue with --resume") from None
    finally:
        bar.close()
    seconds = time.perf_counter() - start_time
    return {
        "out": str(out), "iteration": step, "iterations_run": step - start_step, "seconds": seconds,
        "checkpoint": str(ckpt_path), "generator": str(out / "generators" / f"generator_{step:06d}.pt"),
        "last_losses": losses, "device": str(device), "topk": config.topk, "layer": config.layer,
    }
