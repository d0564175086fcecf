"""FastGAN (Liu et al., ICLR 2021) with spatial Top-K on one generator block (paper 4.4).

Why a patch and not a copy: FastGAN-pytorch is GPL-3.0 and not on PyPI, so
users keep their own checkout and we change its objects at run time. Nothing
from upstream is vendored here; :func:`import_upstream` loads ``models.py``
(and ``diffaug.py`` / ``operation.py`` on demand) from the checkout a user
points us at.

* :func:`patch_generator` puts Top-K on the output of one block (default
  ``feat_32``, paper: 5%) of an upstream ``Generator``, plain or under
  ``nn.DataParallel``. The output of ``feat_32`` feeds ``feat_64`` and, at
  512 px and above, ``se_512``: patching the block's output sparsifies what
  both see. Undo with :func:`unpatch_generator` or the returned handle.
* :func:`disable_noise` turns FastGAN's ``NoiseInjection`` layers into
  identities (the paper's runs had noise injection off in both arms) without
  changing the state dict.
* :func:`load_generator` rebuilds a generator from a checkpoint written by
  ``topk-plugin fastgan train`` (or from upstream's own ``.pth`` files) for
  sampling and FID/KID; :func:`generate` draws images from it.

The training runner lives in :mod:`topk_plugin.integrations.fastgan_train`.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..functional import validate_k
from ..surgery import sparsified_layers, sparsify, unsparsify

__all__ = [
    "FastGANCheckoutError",
    "FastGANPatch",
    "GENERATOR_BLOCKS",
    "IM_SIZES",
    "import_upstream",
    "unwrap",
    "patch_generator",
    "unpatch_generator",
    "patched_layers",
    "disable_noise",
    "noise_disabled",
    "build_generator",
    "load_generator",
    "read_checkpoint",
    "batchnorm_mode",
    "generate",
    "to_uint8",
    "CHECKPOINT_FORMAT",
    "GENERATOR_FORMAT",
]

# Blocks of upstream's Generator whose output is one (n, c, h, w) tensor.
GENERATOR_BLOCKS = (
    "init", "feat_8", "feat_16", "feat_32", "feat_64", "feat_128", "feat_256",
    "feat_512", "feat_1024", "se_64", "se_128", "se_256", "se_512",
)
# Upstream's Generator and Discriminator only build these resolutions.
IM_SIZES = (256, 512, 1024)
CHECKPOINT_FORMAT = "topk_plugin.fastgan.checkpoint/1"
GENERATOR_FORMAT = "topk_plugin.fastgan.generator/1"
_MODULE_PREFIX = "_topk_plugin_fastgan_"


class FastGANCheckoutError(FileNotFoundError):
    """The FastGAN-pytorch checkout is missing or lacks a module we need."""


# --- loading upstream's modules ------------------------------------------------------

_LOADED: dict[tuple[str, str], object] = {}


def _checkout(fastgan_dir) -> Path:
    if fastgan_dir is None:
        fastgan_dir = os.environ.get("FASTGAN_DIR")
        if not fastgan_dir:
            raise FastGANCheckoutError(
                "no FastGAN-pytorch checkout given: pass --fastgan-dir DIR (or set FASTGAN_DIR) "
                "pointing at a clone of https://github.com/odegeasslbc/FastGAN-pytorch"
            )
    path = Path(fastgan_dir).expanduser()
    if not path.is_dir():
        raise FastGANCheckoutError(
            f"FastGAN checkout {str(path)!r} is not a directory; clone "
            "https://github.com/odegeasslbc/FastGAN-pytorch and pass its folder"
        )
    if not (path / "models.py").is_file():
        raise FastGANCheckoutError(
            f"{str(path)!r} has no models.py: it is not a FastGAN-pytorch checkout "
            "(expected models.py with Generator and Discriminator)"
        )
    return path.resolve()


def import_upstream(fastgan_dir=None, module: str = "models"):
    """Upstream's ``models`` (or ``diffaug``, ``operation``) from a checkout, imported once.

    Each checkout gets private module names, so upstream's generic ``models``
    never shadows or is shadowed by another ``models`` on ``sys.path``; the
    checkout is on ``sys.path`` only while the file runs (for its own imports).
    """
    root = _checkout(fastgan_dir)
    key = (str(root), module)
    if key in _LOADED:
        return _LOADED[key]
    file = root / f"{module}.py"
    if not file.is_file():
        raise FastGANCheckoutError(f"FastGAN checkout {str(root)!r} has no {module}.py")
    tag = hashlib.sha1(str(root).encode()).hexdigest()[:10]
    name = f"{_MODULE_PREFIX}{tag}_{module}"
    spec = importlib.util.spec_from_file_location(name, file)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    sys.path.insert(0, str(root))
    try:
        spec.loader.exec_module(mod)
    except ImportError as error:
        del sys.modules[name]
        hint = " (pip install lmdb, or use an image folder)" if "lmdb" in str(error) else ""
        raise ImportError(f"importing {file} failed: {error}{hint}") from error
    finally:
        sys.path.remove(str(root))
    _LOADED[key] = mod
    return mod


# --- the patch ------------------------------------------------------------------------


def unwrap(net: nn.Module) -> nn.Module:
    """The module inside ``nn.DataParallel`` / ``DistributedDataParallel`` (or ``net``)."""
    parallel = (nn.DataParallel, nn.parallel.DistributedDataParallel)
    while isinstance(net, parallel):
        net = net.module
    return net


def _check_layers(net: nn.Module, layers: list[str]) -> None:
    names = dict(net.named_modules())
    for layer in layers:
        if layer not in names or layer == "":
            present = [b for b in GENERATOR_BLOCKS if b in names]
            raise ValueError(
                f"the generator has no block {layer!r}; FastGAN blocks present: {', '.join(present) or 'none'} "
                "(is this an upstream FastGAN Generator?)"
            )


@dataclass
class FastGANPatch:
    """Handle of one :func:`patch_generator` call; ``remove()`` undoes it."""

    net: nn.Module
    layers: tuple[str, ...]
    k: object

    def remove(self) -> None:
        present = sparsified_layers(self.net)
        mine = [layer for layer in self.layers if layer in present]
        if mine:
            unsparsify(self.net, mine)

    def __enter__(self) -> FastGANPatch:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def patch_generator(
    netG: nn.Module,
    k=0.05,
    layer="feat_32",
    *,
    method: str = "module",
    ties: str = "exact",
    mode: str = "keep",
    rank_by: str = "abs",
) -> FastGANPatch:
    """Spatial Top-K on the output of ``layer`` of a FastGAN ``Generator``, in place.

    Args:
        netG: upstream's ``Generator`` (or anything with its block names),
            plain or wrapped in ``nn.DataParallel``/``DistributedDataParallel``.
        k: fraction in (0, 1] (paper: 0.05, i.e. K = 51 of 32x32 positions) or
            an int count.
        layer: a block name (``"feat_32"``) or a list of them.
        method, ties, mode, rank_by: see :func:`topk_plugin.sparsify` and
            :func:`topk_plugin.functional.spatial_topk` (``mode="mean"`` is the
            paper's mean replacement; the authors' GAN code ranked by value).

    Returns a :class:`FastGANPatch`; ``.remove()`` (or :func:`unpatch_generator`)
    restores the original generator. The state dict is unchanged, so
    checkpoints load into patched and plain generators alike.
    """
    validate_k(k)
    net = unwrap(netG)
    layers = [layer] if isinstance(layer, str) else list(layer)
    if not layers:
        raise ValueError("layer must name at least one generator block")
    _check_layers(net, layers)
    sparsify(net, layers, k, method=method, ties=ties, mode=mode, rank_by=rank_by)
    return FastGANPatch(net, tuple(layers), k)


def unpatch_generator(netG: nn.Module, layer=None) -> nn.Module:
    """Remove Top-K from ``layer`` (default: every patched block); returns ``netG``."""
    net = unwrap(netG)
    if layer is None:
        unsparsify(net)
    else:
        unsparsify(net, [layer] if isinstance(layer, str) else list(layer))
    return netG


def patched_layers(netG: nn.Module) -> dict:
    """``{block name: TopK}`` for the patched blocks of ``netG``."""
    return sparsified_layers(unwrap(netG))


# --- noise injection ---------------------------------------------------------------------

_SILENT: dict[type, type] = {}


def _silent_forward(self, feat, noise=None):
    return feat


def _silent_class(base: type) -> type:
    if base not in _SILENT:
        _SILENT[base] = type(base.__name__, (base,), {
            "forward": _silent_forward,
            "_topk_plugin_noise_base": base,
            "__module__": base.__module__,
            "__qualname__": base.__qualname__,
        })
    return _SILENT[base]


def _noise_layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if type(m).__name__ == "NoiseInjection"]


def disable_noise(netG: nn.Module) -> int:
    """Make every ``NoiseInjection`` an identity; returns how many were found.

    Why not delete them: their ``weight`` stays (frozen at 0) so the state dict
    keeps upstream's layout. ``enable_noise`` is not offered: a run either
    trains with noise or without.
    """
    layers = _noise_layers(unwrap(netG))
    for m in layers:
        if "_topk_plugin_noise_base" not in type(m).__dict__:
            m.__class__ = _silent_class(type(m))
        weight = getattr(m, "weight", None)
        if isinstance(weight, nn.Parameter):
            with torch.no_grad():
                weight.zero_()
            weight.requires_grad_(False)
    return len(layers)


def noise_disabled(netG: nn.Module) -> bool:
    layers = _noise_layers(unwrap(netG))
    return bool(layers) and all("_topk_plugin_noise_base" in type(m).__dict__ for m in layers)


# --- building and loading generators ----------------------------------------------------


def build_generator(fastgan_dir=None, *, im_size: int = 256, ngf: int = 64, nz: int = 256,
                    topk=0.05, layer="feat_32", topk_mode: str = "keep", rank_by: str = "abs",
                    ties: str = "exact", noise: bool = True, init_weights: bool = True) -> nn.Module:
    """Upstream's ``Generator`` from the checkout, initialised like upstream, patched.

    ``topk=0`` (or ``None``) means the dense baseline.
    """
    if im_size not in IM_SIZES:
        raise ValueError(f"im_size must be one of {IM_SIZES} (FastGAN builds no other size), got {im_size}")
    models = import_upstream(fastgan_dir, "models")
    netG = models.Generator(ngf=ngf, nz=nz, im_size=im_size)
    if init_weights and hasattr(models, "weights_init"):
        netG.apply(models.weights_init)
    if topk:
        patch_generator(netG, topk, layer, mode=topk_mode, rank_by=rank_by, ties=ties)
    if not noise:
        disable_noise(netG)
    return netG


def _strip_module(state: dict) -> dict:
    return {k.removeprefix("module."): v for k, v in state.items()}


def _infer_upstream_config(state: dict) -> dict:
    """nz, ngf and im_size from the tensor shapes of an upstream generator state dict."""
    key = next((k for k in state if k.startswith("init.init.0.weight")), None)
    if key is None:
        raise ValueError("not a FastGAN generator state dict (no init.init.0.weight*)")
    nz, twice_nfc4 = state[key].shape[:2]
    ngf = twice_nfc4 // 32  # init has nfc[4] * 2 = 16 * ngf * 2 channels
    im_size = 1024 if any(k.startswith("feat_1024.") for k in state) else 512 if any(
        k.startswith("feat_512.") for k in state) else 256
    return {"nz": int(nz), "ngf": int(ngf), "im_size": im_size}


def read_checkpoint(path) -> dict:
    """A checkpoint of ours or of upstream's train.py, as ``{"config", "g", "iteration"}``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path} is not a FastGAN checkpoint")
    fmt = ckpt.get("format")
    if fmt in (CHECKPOINT_FORMAT, GENERATOR_FORMAT):
        return {"config": dict(ckpt["config"]), "g": ckpt["g_ema"], "iteration": ckpt.get("iteration"), "ours": True}
    if isinstance(ckpt.get("g"), dict):  # upstream: N.pth holds the EMA weights in "g"
        g = _strip_module(ckpt["g"])
        return {"config": _infer_upstream_config(g), "g": g, "iteration": None, "ours": False}
    raise ValueError(f"{path} is neither a topk-plugin FastGAN checkpoint nor an upstream one (no 'g' entry)")


def load_generator(path, fastgan_dir=None, *, device="cpu", topk=None, layer=None) -> tuple[nn.Module, dict]:
    """Rebuild, patch and load the (EMA) generator of a checkpoint; returns ``(netG, config)``.

    For our checkpoints the config (size, channels, Top-K, noise) comes from
    the file and ``fastgan_dir`` defaults to the checkout used for training
    (if it still exists), then to ``$FASTGAN_DIR``.
    Upstream's checkpoints carry no config: size and channels are read off
    the tensors, Top-K comes from ``topk``/``layer`` (default: none).
    """
    ck = read_checkpoint(path)
    cfg = ck["config"]
    if not ck["ours"]:
        cfg.update(topk=topk or 0, layer=layer or "feat_32", noise=True)
    elif topk is not None or layer is not None:
        cfg.update({k: v for k, v in (("topk", topk), ("layer", layer)) if v is not None})
    recorded = cfg.get("fastgan_dir")
    if fastgan_dir is None and recorded and Path(recorded).is_dir():
        fastgan_dir = recorded  # the checkout the run was trained with
    where = fastgan_dir or os.environ.get("FASTGAN_DIR")
    netG = build_generator(
        where, im_size=cfg["im_size"], ngf=cfg["ngf"], nz=cfg["nz"], topk=cfg.get("topk") or 0,
        layer=cfg.get("layer", "feat_32"), topk_mode=cfg.get("topk_mode", "keep"),
        rank_by=cfg.get("rank_by", "abs"), ties=cfg.get("ties", "exact"),
        noise=cfg.get("noise", True), init_weights=False,
    )
    netG.load_state_dict(ck["g"])
    cfg["iteration"] = ck["iteration"]
    return netG.to(device), cfg


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] to uint8, rounding exactly as ``save_image`` does."""
    return (images.clamp(-1, 1).add(1).mul(127.5).add(0.5)).clamp(0, 255).to(torch.uint8)


@contextmanager
def batchnorm_mode(netG: nn.Module, bn: str):
    """Sampling mode. ``bn="batch"``: BatchNorm uses batch statistics, as in
    upstream's eval.py and sample grids (which never call ``eval()``);
    ``bn="running"``: plain ``eval()``. Either way spectral norm does no power
    iteration, and every buffer is restored afterwards, so sampling never
    changes the model."""
    if bn not in ("batch", "running"):
        raise ValueError(f"bn must be 'batch' or 'running', got {bn!r}")
    modes = {m: m.training for m in netG.modules()}
    saved = [(b, b.detach().clone()) for b in netG.buffers()]
    netG.eval()
    if bn == "batch":
        for m in netG.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.train()
    try:
        yield netG
    finally:
        for m, training in modes.items():
            m.training = training
        with torch.no_grad():
            for b, value in saved:
                b.copy_(value)


def generate(netG: nn.Module, n: int, *, nz: int, batch_size: int = 16, seed: int = 0,
             device="cpu", bn: str = "batch"):
    """Yield batches of ``n`` uint8 images (3xHxW) from ``netG``, reproducibly from ``seed``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    gen = torch.Generator().manual_seed(seed)
    device = torch.device(device)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad(), batchnorm_mode(netG, bn):
        torch.manual_seed(seed)  # NoiseInjection draws from the global generator
        for start in range(0, n, batch_size):
            size = min(batch_size, n - start)
            z = torch.randn(size, nz, generator=gen).to(device)
            out = netG(z)
            yield to_uint8(out[0] if isinstance(out, (list, tuple)) else out).cpu()

