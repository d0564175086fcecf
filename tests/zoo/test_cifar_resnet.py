"""The paper's CIFAR-style ResNet-18 (SPEC section 2) as ``resnet18_cifar``: layout, head rule, registry."""
import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn
from zoo_checks import assert_placement

import topk_plugin
from topk_plugin.zoo.cifar_resnet import head_grid


def test_spec_layout_at_224():
    model = topk_plugin.create_model("resnet18_cifar", num_classes=10)
    # SPEC 2: 3x3 stem with stride 1, no max-pool, Linear(25088, 10)
    assert (model.conv1.kernel_size, model.conv1.stride) == ((3, 3), (1, 1))
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert (model.fc.in_features, model.fc.out_features) == (25088, 10)
    assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == [2, 2, 2, 2]


def test_head_equals_avg_pool2d_4_on_the_224_px_map():
    model = topk_plugin.create_model("resnet18_cifar", num_classes=3).eval()
    features = torch.randn(2, 512, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model.fc(torch.flatten(F.avg_pool2d(features, 4), 1))
        assert torch.equal(model.forward_head(features), expected)


@pytest.mark.parametrize("img_size, grid", [(16, 1), (32, 1), (64, 2), (100, 3), (224, 7)])
def test_head_rule_at_other_sizes(img_size, grid):
    assert head_grid(img_size) == grid
    model = timm.create_model("resnet18_cifar", num_classes=4, img_size=img_size).eval()
    assert model.fc.in_features == 512 * grid * grid
    with torch.no_grad():
        assert model(torch.randn(1, 3, img_size, img_size)).shape == (1, 4)
        assert model(torch.randn(1, 3, img_size + 8, img_size + 8)).shape == (1, 4)  # other inputs still run


def test_registered_variants_put_topk_after_layer2():
    names = timm.list_models("resnet18_cifar_topk*")
    assert {"resnet18_cifar_topk20", "resnet18_cifar_topk20mean"} <= set(names)
    for variant, mode in (("resnet18_cifar_topk20", "keep"), ("resnet18_cifar_topk20mean", "mean")):
        torch.manual_seed(0)
        model = topk_plugin.create_model(variant, num_classes=5, img_size=32)
        dense = topk_plugin.create_model("resnet18_cifar", num_classes=5, img_size=32)
        dense.load_state_dict(model.state_dict())
        assert model.topk_variant["mode"] == mode
        assert_placement(model, dense, ["layer2"], 0.2, torch.randn(2, 3, 32, 32), mode=mode)


def test_too_small_img_size_is_refused():
    with pytest.raises(ValueError, match="img_size"):
        timm.create_model("resnet18_cifar", img_size=4)
