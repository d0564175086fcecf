"""Top-K mask maps: sparsity, channel order, outputs."""
import json

import pytest
import torch
from PIL import Image
from reference import reference_k, reference_topk

from topk_plugin.analysis import FeatureExtractor, topk_masks

from .conftest import tiny_net


def test_every_channel_keeps_exactly_k_positions(target):
    result = topk_masks(target, tiny_net(), layer="4", topk=0.1, size=None)
    c, h, w = result.mask.shape
    assert (c, h, w) == (16, 16, 16)
    k = reference_k(0.1, h * w)
    assert result.config["k"] == k
    assert torch.equal(result.mask.flatten(1).sum(1), torch.full((c,), k))
    with torch.no_grad():
        act = FeatureExtractor(tiny_net(), ["4"])(target)["4"]
    # the reference keeps the same entries (zeros kept to fill K are invisible in its output)
    assert torch.equal(result.mask & (act[0] != 0), reference_topk(act, 0.1)[0] != 0)


def test_channels_are_ordered_by_the_mean_of_their_topk_responses(target):
    result = topk_masks(target, tiny_net(), layer="4", topk=5, size=None)
    act = result.activation.abs()
    expected = [float(act[c][result.mask[c]].mean()) for c in range(act.shape[0])]
    assert result.activity == pytest.approx(expected, rel=1e-5)
    ordered = [result.activity[c] for c in result.order]
    assert ordered == sorted(ordered, reverse=True)


def test_outputs(target, tmp_path):
    result = topk_masks(target, tiny_net(), layer="4", topk=0.1, size=None)
    paths = result.save(tmp_path, "tiny", max_channels=9, top=3)
    with Image.open(paths["tiled"]) as tiled:
        assert tiled.width == tiled.height  # 3 x 3 tiles
    with Image.open(paths["overlay"]) as overlay:
        assert overlay.width >= 5 * 32  # image, combined, 3 channels
    summary = json.loads(open(paths["json"]).read())
    assert summary["layer"] == "4" and len(summary["top_channels"]) == 3
    assert summary["kept_fraction"] == pytest.approx(reference_k(0.1, 256) / 256)
    up = result.upsampled(result.order[0])
    assert up.shape == (32, 32) and float(up.mean()) == pytest.approx(reference_k(0.1, 256) / 256)


def test_token_layers_are_rejected(target):
    class Tokens(torch.nn.Module):
        def forward(self, x):
            return x.flatten(2).transpose(1, 2)

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), Tokens())
    with pytest.raises(ValueError, match="tokens"):
        topk_masks(target, model, layer="1", size=None)
