"""sparsify on real torchvision and timm architectures (random init, small inputs)."""
import pytest
import timm
import torch
import torchvision
from helpers import check_sparsified

ALEXNET_PAPER = ["features.2", "features.5", "features.7", "features.9", "features.12"]
VGG16_PAPER = ["features.4", "features.9", "features.16", "features.23", "features.30"]


def _input(size, seed=0):
    return torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "build, layers, k, size",
    [
        (lambda: torchvision.models.alexnet(), ALEXNET_PAPER, 0.1, 96),
        (lambda: torchvision.models.vgg16(), VGG16_PAPER, 0.05, 64),
        (lambda: torchvision.models.resnet18(), "layer2", 0.2, 64),
        (lambda: torchvision.models.resnet18(), ["layer1.0", "layer2.*.relu", "layer3"], 5, 64),
        (lambda: timm.create_model("resnet18"), "layer2", 0.2, 64),
        (lambda: timm.create_model("efficientnet_b0"), ["blocks.1", "blocks.3.0.bn2", "blocks.4"], 0.1, 64),
    ],
    ids=["tv-alexnet-paper", "tv-vgg16-paper", "tv-resnet18-layer2", "tv-resnet18-mixed", "timm-resnet18", "timm-effnet-b0"],
)
@pytest.mark.parametrize("method", ["module", "hook"])
def test_zoo_model(build, layers, k, size, method):
    torch.manual_seed(0)
    check_sparsified(build(), layers, k, _input(size), method)
