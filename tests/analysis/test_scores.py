"""Scores against independent references (numpy, scipy, scikit-image)."""
import numpy as np
import pytest
import torch

from topk_plugin.analysis.scores import (
    color_histogram_distance,
    edge_correlation,
    gram_distance,
    gram_matrix,
    grayscale,
    ssim,
)


def _images(seed=0, size=40):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(1, 3, size, size, generator=g)
    b = (a + 0.3 * torch.rand(1, 3, size, size, generator=g)).clamp(0, 1)
    return a, b


def test_gram_matrix_matches_einsum():
    x = torch.randn(2, 5, 7, 3, dtype=torch.float64)
    expected = torch.einsum("nchw,ndhw->ncd", x, x) / (7 * 3)
    torch.testing.assert_close(gram_matrix(x), expected)
    tokens = torch.randn(2, 11, 5, dtype=torch.float64)  # (n, tokens, c)
    torch.testing.assert_close(gram_matrix(tokens), torch.einsum("ntc,ntd->ncd", tokens, tokens) / 11)


def test_gram_distance_is_blind_to_position_and_relative():
    f = {"a": torch.randn(1, 4, 6, 6, dtype=torch.float64), "b": torch.randn(1, 8, 3, 3, dtype=torch.float64)}
    shuffled = {k: v.flatten(2)[..., torch.randperm(v[0, 0].numel())].reshape(v.shape) for k, v in f.items()}
    assert gram_distance(shuffled, f) == pytest.approx(0.0, abs=1e-12)
    doubled = {k: 2 * v for k, v in f.items()}  # Gram scales by 4: relative distance 3 per layer
    assert gram_distance(doubled, f) == pytest.approx(3.0)


def test_ssim_matches_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    a, b = _images()
    ga, gb = (grayscale(t.double())[0, 0].numpy() for t in (a, b))
    expected = metrics.structural_similarity(ga, gb, gaussian_weights=True, sigma=1.5,
                                             use_sample_covariance=False, data_range=1.0)
    assert ssim(a, b) == pytest.approx(expected, abs=1e-9)
    assert ssim(a, a) == pytest.approx(1.0)


def test_edge_correlation_matches_scipy_sobel():
    ndimage = pytest.importorskip("scipy.ndimage")
    a, b = _images(1)

    def edges(t):
        g = grayscale(t.double())[0, 0].numpy()
        return np.hypot(ndimage.sobel(g, axis=0), ndimage.sobel(g, axis=1))[1:-1, 1:-1]

    expected = np.corrcoef(edges(a).ravel(), edges(b).ravel())[0, 1]
    assert edge_correlation(a, b) == pytest.approx(expected, abs=1e-9)
    assert edge_correlation(a, a) == pytest.approx(1.0)


def test_color_histogram_distance_matches_numpy():
    a, b = _images(2)

    def hist(t):
        px = t[0].permute(1, 2, 0).reshape(-1, 3).double().numpy()
        h, _ = np.histogramdd(np.minimum(px, 1 - 1e-12), bins=8, range=[(0, 1)] * 3)
        return h.ravel() / h.sum()

    expected = 0.5 * np.abs(hist(a) - hist(b)).sum()
    assert color_histogram_distance(a, b) == pytest.approx(expected, abs=1e-12)
    shuffled = a.flatten(2)[..., torch.randperm(a[0, 0].numel())].reshape(a.shape)
    assert color_histogram_distance(shuffled, a) == 0.0  # position does not matter
    red, blue = torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)
    red[:, 0], blue[:, 2] = 1, 1
    assert color_histogram_distance(red, blue) == 1.0


def test_scores_reject_mismatched_images():
    with pytest.raises(ValueError, match="same shape"):
        ssim(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 20, 20))
