"""Named-layer activations: values, early stop, errors, default layers."""
import pytest
import torch
from torch import nn

from topk_plugin.analysis.features import IMAGENET_MEAN, IMAGENET_STD, FeatureExtractor, default_layers
from topk_plugin.layers import UnknownLayerError

from .conftest import TINY_LAYERS


def test_activations_equal_a_manual_forward(net, target):
    feats = FeatureExtractor(net, TINY_LAYERS)(target)
    x = (target - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    expected = {}
    with torch.no_grad():
        for i, module in enumerate(net):
            x = module(x.clone())
            if str(i) in TINY_LAYERS:
                expected[str(i)] = x.clone()
    assert list(feats) == TINY_LAYERS
    for name in TINY_LAYERS:
        torch.testing.assert_close(feats[name], expected[name])


def test_forward_stops_after_the_last_needed_layer(net, target):
    called = []
    net[8].register_forward_hook(lambda *a: called.append("pool"))
    FeatureExtractor(net, ["1", "4"])(target)
    assert called == []  # layers after '4' never ran
    FeatureExtractor(net, ["8"])(target)
    assert called == ["pool"]


def test_inplace_relu_does_not_change_a_captured_conv_output(net, target):
    conv = FeatureExtractor(net, ["0", "1"])(target)["0"]
    assert (conv < 0).any()  # the in-place ReLU after it did not clamp the stored tensor


def test_gradients_reach_the_image(net, target):
    x = target.clone().requires_grad_(True)
    FeatureExtractor(net, ["4"])(x)["4"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_unknown_layer_names_close_matches(net):
    with pytest.raises(UnknownLayerError, match="closest names"):
        FeatureExtractor(net, ["44"])


def test_non_tensor_and_flat_outputs_are_rejected(target):
    class Pair(nn.Module):
        def forward(self, x):
            return x, x

    model = nn.Sequential(nn.Conv2d(3, 4, 3), Pair())
    with pytest.raises(TypeError, match="outputs a tuple"):
        FeatureExtractor(model, ["1"])(target)
    with pytest.raises(ValueError, match="earlier layer"):
        FeatureExtractor(nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 4)), ["1"])(target)


def test_default_layers_known_and_generic(net):
    assert default_layers(net, "vgg16") == ["features.1", "features.4", "features.9", "features.16", "features.23"]
    # one layer per resolution, the last module called once at each: 32, 16, 8 px (not the 1x1 pool)
    assert default_layers(net, size=32) == ["1", "4", "7"]
