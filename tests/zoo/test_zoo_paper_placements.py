"""Each registered paper placement puts Top-K exactly where SPEC section 2 says."""
import pytest
import timm
import torch
import torchvision
from torch import nn
from zoo_checks import assert_placement

# SPEC section 2, written out here independently of topk_plugin.zoo.placements.
ALEXNET = ["features.2", "features.5", "features.7", "features.9", "features.12"]
VGG16 = ["features.4", "features.9", "features.16", "features.23", "features.30"]
VGG16_BN_POOLS = ["features.6", "features.13", "features.23", "features.33", "features.43"]

CASES = [
    # (library, variant, base, SPEC layers, k, mode, input side)
    ("torchvision", "alexnet_topk10", "alexnet", ALEXNET, 0.1, "keep", 96),
    ("torchvision", "alexnet_topk10mean", "alexnet", ALEXNET, 0.1, "mean", 96),
    ("torchvision", "vgg16_topk5", "vgg16", VGG16, 0.05, "keep", 64),
    ("torchvision", "vgg16_bn_topk5", "vgg16_bn", VGG16_BN_POOLS, 0.05, "keep", 64),
    ("torchvision", "resnet18_topk20", "resnet18", ["layer2"], 0.2, "keep", 64),
    ("timm", "resnet18_topk20", "resnet18", ["layer2"], 0.2, "keep", 64),
    ("timm", "vgg16_topk5", "vgg16", VGG16, 0.05, "keep", 64),
]


def _build(library, name):
    if library == "timm":
        return timm.create_model(name)
    return torchvision.models.get_model(name)


@pytest.mark.parametrize("library, variant, base, layers, k, mode, size", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_paper_placement(library, variant, base, layers, k, mode, size):
    torch.manual_seed(0)
    model = _build(library, variant)
    dense = _build(library, base)
    dense.load_state_dict(model.state_dict())  # same keys: Top-K adds none
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    assert_placement(model, dense, layers, k, x, mode=mode)


@pytest.mark.parametrize("library", ["torchvision", "timm"])
def test_spec_layers_are_the_described_modules(library):
    """SPEC: VGG16 after every max-pool; AlexNet after pool1, pool2, ReLU3, ReLU4, pool5."""
    vgg = _build(library, "vgg16")
    pools = [f"features.{i}" for i, m in enumerate(vgg.features) if isinstance(m, nn.MaxPool2d)]
    assert pools == VGG16
    if library == "torchvision":
        features = torchvision.models.alexnet().features
        kinds = [type(features[int(name.split(".")[1])]) for name in ALEXNET]
        assert kinds == [nn.MaxPool2d, nn.MaxPool2d, nn.ReLU, nn.ReLU, nn.MaxPool2d]
        bn = torchvision.models.vgg16_bn().features
        assert [f"features.{i}" for i, m in enumerate(bn) if isinstance(m, nn.MaxPool2d)] == VGG16_BN_POOLS
