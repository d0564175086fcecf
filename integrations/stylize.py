"""AdaIN style transfer (Huang and Belongie 2017) of an image folder: ``topk-plugin stylize``.

The paper's stylized evaluation (SPEC section 8) used AdaIN with alpha 0.5.
The networks are the AdaIN project's: the normalised VGG-19 up to ``relu4_1``
as encoder and its mirror image as decoder, with the state-dict layout of the
PyTorch port's ``vgg_normalised.pth`` and ``decoder.pth`` (keys ``<index>.weight``
of one ``nn.Sequential``; the full VGG file's layers after ``relu4_1`` are
ignored). Images enter as RGB in [0, 1]; the encoder's first 1x1 conv does the
normalisation.

Each content image gets one style image, drawn from ``(seed, its relative
path)``, so a rerun or a resumed run pairs them alike. Outputs keep the
content folder's relative paths (an ImageFolder stays one) and file formats,
are written atomically, and existing outputs are skipped: an interrupted run
continues where it stopped. ``stylize.json`` records the pairs.
"""
from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from .._io import atomic_write_json

__all__ = ["build_encoder", "build_decoder", "load_networks", "adain", "stylize", "stylize_folder"]

WEIGHTS_SOURCE = (
    "the Releases page of https://github.com/naoto0804/pytorch-AdaIN (vgg_normalised.pth and decoder.pth, "
    "converted from the original https://github.com/xunhuang1995/AdaIN-style models)"
)
# ("conv", in, out): reflection pad 1, 3x3 conv, ReLU. "pool": 2x2 max-pool (ceil). "up": nearest x2.
_ENCODER = [("conv1x1", 3, 3), ("conv", 3, 64), ("conv", 64, 64), ("pool",),  # relu1_1 after the 2nd entry
            ("conv", 64, 128), ("conv", 128, 128), ("pool",),
            ("conv", 128, 256), ("conv", 256, 256), ("conv", 256, 256), ("conv", 256, 256), ("pool",),
            ("conv", 256, 512)]  # relu4_1: the encoder's output
_DECODER = [("conv", 512, 256), ("up",), ("conv", 256, 256), ("conv", 256, 256), ("conv", 256, 256),
            ("conv", 256, 128), ("up",), ("conv", 128, 128), ("conv", 128, 64), ("up",), ("conv", 64, 64),
            ("last", 64, 3)]


def _sequential(spec) -> nn.Sequential:
    layers: list[nn.Module] = []
    for kind, *channels in spec:
        if kind == "conv1x1":
            layers.append(nn.Conv2d(*channels, kernel_size=1))
        elif kind in ("conv", "last"):
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(*channels, kernel_size=3)]
            if kind == "conv":
                layers.append(nn.ReLU())
        elif kind == "pool":
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        else:
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
    return nn.Sequential(*layers)


def build_encoder() -> nn.Sequential:
    """Normalised VGG-19 up to relu4_1 (31 modules, random weights)."""
    return _sequential(_ENCODER)


def build_decoder() -> nn.Sequential:
    """The AdaIN decoder (random weights)."""
    return _sequential(_DECODER)


def _load(net: nn.Sequential, path, what: str, filename: str) -> nn.Sequential:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"AdaIN {what} weights not found: {path}. Download {filename} from {WEIGHTS_SOURCE}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # not a torch file, truncated download, ...
        raise ValueError(f"{path} is not a readable state dict ({type(error).__name__}: {error}); "
                         f"expected {filename} from {WEIGHTS_SOURCE}") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, expected the state dict {filename}")
    size = len(net)
    mine = {k: v for k, v in state.items() if k.split(".", 1)[0].isdigit() and int(k.split(".", 1)[0]) < size}
    try:
        net.load_state_dict(mine)
    except RuntimeError as error:
        raise ValueError(f"{path} does not fit the AdaIN {what} layout of {filename}: {error}") from None
    return net


def load_networks(encoder, decoder, device=None) -> tuple[nn.Module, nn.Module]:
    """``(encoder, decoder)`` in eval mode on ``device``, loaded from the two state-dict files."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    enc = _load(build_encoder(), encoder, "encoder", "vgg_normalised.pth")
    dec = _load(build_decoder(), decoder, "decoder", "decoder.pth")
    return enc.to(device).eval().requires_grad_(False), dec.to(device).eval().requires_grad_(False)


def adain(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Content features with each channel's mean and std replaced by the style's (over space)."""
    def stats(x):
        flat = x.flatten(2)
        return flat.mean(2)[..., None, None], (flat.var(2) + eps).sqrt()[..., None, None]

    c_mean, c_std = stats(content)
    s_mean, s_std = stats(style)
    return (content - c_mean) / c_std * s_std + s_mean


@torch.no_grad()
def stylize(encoder: nn.Module, decoder: nn.Module, content: torch.Tensor, style: torch.Tensor,
            alpha: float = 0.5) -> torch.Tensor:
    """(1, 3, H, W) content and style in [0, 1] -> stylized (1, 3, H, W) in [0, 1].

    ``alpha`` blends the AdaIN features with the content's own (1: full style).
    """
    features = encoder(content)
    target = alpha * adain(features, encoder(style)) + (1 - alpha) * features
    out = decoder(target)[..., : content.shape[-2], : content.shape[-1]]  # ceil-mode pools may add a row
    return out.clamp(0, 1)


def _read(path: Path, size: int, device) -> torch.Tensor:
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor, resize

    try:
        with Image.open(path) as image:
            tensor = pil_to_tensor(image.convert("RGB"))
    except OSError as error:
        raise ValueError(f"cannot decode image {path}: {error}; remove or replace the file") from None
    if size:
        tensor = resize(tensor, size, antialias=True)
    return tensor.to(device).float().div(255).unsqueeze(0)


def _save(image: torch.Tensor, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    array = image.squeeze(0).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        Image.fromarray(array).save(tmp, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def stylize_folder(content, style, encoder, decoder, out, *, alpha: float = 0.5, content_size: int = 512,
                   style_size: int = 512, seed: int = 0, device=None, progress: bool = True) -> dict:
    """Stylize every image under ``content`` with a style image from ``style`` into ``out``.

    ``content_size``/``style_size``: shorter side in px before stylization (0: as is).
    """
    from tqdm import tqdm

    from .fastgan_train import find_images

    if not 0 <= alpha <= 1:
        raise ValueError(f"--alpha must be in [0, 1] (paper: 0.5), got {alpha}")
    if content_size < 0 or style_size < 0:
        raise ValueError("--content-size and --style-size must be >= 0 (0 keeps the size)")
    content, style, out = Path(content), Path(style), Path(out)
    if out.resolve() == content.resolve() or content.resolve() in out.resolve().parents:
        raise ValueError(f"--out {out} must not be (inside) the content folder {content}")
    enc, dec = load_networks(encoder, decoder, device)
    device = next(enc.parameters()).device
    contents, styles = find_images(content), find_images(style)
    pairs, written, start = {}, 0, time.perf_counter()
    for path in tqdm(contents, desc="stylize", unit="img", disable=not progress, dynamic_ncols=True):
        rel = path.relative_to(content).as_posix()
        chosen = styles[random.Random(f"{seed}:{rel}").randrange(len(styles))]
        pairs[rel] = chosen.relative_to(style).as_posix()
        target = out / rel
        if target.exists():
            continue
        image = stylize(enc, dec, _read(path, content_size, device), _read(chosen, style_size, device), alpha)
        _save(image, target)
        written += 1
    summary = {"content": str(content.resolve()), "style": str(style.resolve()), "out": str(out.resolve()),
               "encoder": str(Path(encoder).resolve()), "decoder": str(Path(decoder).resolve()), "alpha": alpha,
               "content_size": content_size, "style_size": style_size, "seed": seed, "images": len(contents),
               "written": written, "skipped_existing": len(contents) - written,
               "seconds": round(time.perf_counter() - start, 3)}
    atomic_write_json(out / "stylize.json", {**summary, "pairs": pairs})
    return summary
