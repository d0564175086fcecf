"""Scores that make "Top-K carries structure, the rest carries texture" measurable.

Every score compares an output image with the target (both ``(1, 3, H, W)``
in [0, 1]). Two kinds:

Structure (higher = more of the target's spatial layout, edges, parts):

* ``ssim``: structural similarity (Wang et al. 2004) of the grayscale images
  (ITU-R 601 luma), Gaussian window sigma 1.5 (11 taps), K1 = 0.01,
  K2 = 0.03, data range 1, averaged over the positions where the window fits
  (same as ``skimage.metrics.structural_similarity(..., gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, data_range=1)``). 1 = identical,
  about 0 = unrelated.
* ``edge_correlation``: Pearson correlation of the Sobel gradient magnitudes
  of the grayscale images. 1 = same edges in the same places, about 0 for a
  texture with no layout in common with the target.

Texture / colour (lower = closer statistics, regardless of where things are):

* ``gram_distance``: mean over the analysis layers of
  ``||G(x) - G(t)||_F / ||G(t)||_F`` with ``G`` the Gram matrix of the *full*
  (unmasked) activations, ``F F^T / positions``. 0 = same texture statistics
  in the network's eyes; Gatys's texture synthesis drives it down.
* ``color_histogram_distance``: total-variation distance between the joint RGB
  histograms (8 bins per channel, 512 bins), in [0, 1]: 0 = same colour
  distribution, 1 = no colour in common. Blind to position.

Structure scores are spatially aligned: a texture synthesis, which keeps the
statistics but not the layout, scores low on them by design, so compare
conditions with each other, not with 1.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "gram_matrix",
    "grayscale",
    "ssim",
    "edge_correlation",
    "gram_distance",
    "color_histogram_distance",
    "image_scores",
    "STRUCTURE_SCORES",
    "TEXTURE_SCORES",
]

STRUCTURE_SCORES = ("ssim", "edge_correlation")
TEXTURE_SCORES = ("gram_distance", "color_histogram_distance")


def gram_matrix(t: torch.Tensor) -> torch.Tensor:
    """``(n, c, c)`` Gram matrix ``F F^T / positions`` of ``(n, c, *spatial)`` or ``(n, tokens, c)``."""
    f = t.transpose(1, 2) if t.ndim == 3 else t.flatten(2)
    return f @ f.transpose(1, 2) / f.shape[2]


def grayscale(image: torch.Tensor) -> torch.Tensor:
    """``(n, 1, H, W)`` luma (ITU-R 601) of ``(n, 3, H, W)`` RGB in [0, 1]."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return (image * w).sum(1, keepdim=True)


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape or x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected two images of the same shape (n, 3, H, W), got {tuple(x.shape)} and {tuple(y.shape)}")


def ssim(x: torch.Tensor, y: torch.Tensor, *, sigma: float = 1.5) -> float:
    """Grayscale SSIM of two images in [0, 1] (see module doc)."""
    _check_pair(x, y)
    a, b = grayscale(x.double()), grayscale(y.double())
    radius = int(3.5 * sigma + 0.5)  # skimage's truncate=3.5: 11 taps for sigma 1.5
    if min(a.shape[-2:]) < 2 * radius + 1:
        raise ValueError(f"images of {tuple(a.shape[-2:])} px are too small for SSIM (need {2 * radius + 1} px)")
    r = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).view(1, 1, 2 * radius + 1, 2 * radius + 1)
    blur = lambda t: F.conv2d(t, kernel)  # 'valid': only where the window fits
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(s.mean())


def _sobel_magnitude(gray: torch.Tensor) -> torch.Tensor:
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=gray.dtype, device=gray.device)
    k = torch.stack([kx, kx.T]).unsqueeze(1)
    g = F.conv2d(gray, k)
    return g.pow(2).sum(1).sqrt()


def edge_correlation(x: torch.Tensor, y: torch.Tensor) -> float:
    """Pearson correlation of the Sobel edge magnitudes of the grayscale images."""
    _check_pair(x, y)
    ex = _sobel_magnitude(grayscale(x.double())).flatten()
    ey = _sobel_magnitude(grayscale(y.double())).flatten()
    ex, ey = ex - ex.mean(), ey - ey.mean()
    denom = ex.norm() * ey.norm()
    if denom == 0:
        return 0.0  # a flat image has no edges to agree on
    return float((ex @ ey) / denom)


def gram_distance(features_x: dict, features_t: dict) -> float:
    """Mean relative Frobenius distance of the Gram matrices, layer by layer."""
    if features_x.keys() != features_t.keys() or not features_t:
        raise ValueError("gram_distance needs the same non-empty set of layers for both images")
    dists = []
    for name, t in features_t.items():
        gt, gx = gram_matrix(t.double()), gram_matrix(features_x[name].double())
        dists.append(float((gx - gt).norm() / gt.norm().clamp_min(1e-30)))
    return sum(dists) / len(dists)


def color_histogram_distance(x: torch.Tensor, y: torch.Tensor, *, bins: int = 8) -> float:
    """Total-variation distance of the joint RGB histograms (``bins``^3 cells), in [0, 1]."""
    _check_pair(x, y)

    def hist(img: torch.Tensor) -> torch.Tensor:
        q = (img.clamp(0, 1) * bins).long().clamp_max(bins - 1)  # (n, 3, H, W)
        idx = (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]
        h = torch.bincount(idx.flatten(), minlength=bins**3).double()
        return h / h.sum()

    return float(0.5 * (hist(x) - hist(y)).abs().sum())


def image_scores(image: torch.Tensor, target: torch.Tensor, features_image: dict | None = None,
                 features_target: dict | None = None) -> dict[str, float]:
    """All four scores (``gram_distance`` only when features are given)."""
    image, target = image.detach(), target.detach()
    scores = {
        "ssim": ssim(image, target),
        "edge_correlation": edge_correlation(image, target),
        "color_histogram_distance": color_histogram_distance(image, target),
    }
    if features_image is not None and features_target is not None:
        scores["gram_distance"] = gram_distance(
            {k: v.detach() for k, v in features_image.items()}, {k: v.detach() for k, v in features_target.items()}
        )
    return scores
