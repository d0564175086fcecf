"""topk_plugin.zoo.create_model: any base, registered or not, and clear errors."""
import pytest
import timm
import torch
import torchvision

import topk_plugin.zoo as zoo
from topk_plugin import sparsified_layers
from topk_plugin.zoo import factory
from topk_plugin.zoo.rules import timm_default, torchvision_default
from topk_plugin.zoo.weights import ChecksumError, WeightsUnavailableError


def test_library_choice():
    assert zoo.create_model("resnet18_topk20").topk_variant["source"] == "timm"
    assert zoo.create_model("alexnet_topk10").topk_variant["source"] == "torchvision"
    tv = zoo.create_model("tv:resnet18_topk20")
    assert isinstance(tv, torchvision.models.ResNet)
    assert zoo.create_model("resnet18_topk20", source="torchvision").topk_variant["source"] == "torchvision"
    with pytest.raises(ValueError, match="source"):
        zoo.create_model("timm:resnet18_topk20", source="torchvision")


def test_unregistered_timm_base_gets_the_default_rule():
    model = zoo.create_model("resnet10t_topk30mean", num_classes=3)
    dense = timm.create_model("resnet10t")
    placement = timm_default(dense)
    assert placement.layers == ("layer2",) and placement.rule == "timm-stage8"
    ((name, topk),) = sparsified_layers(model).items()
    assert (name, topk.k, topk.mode) == ("layer2", 0.3, "mean")
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 3)


def test_unregistered_torchvision_base_gets_the_default_rule():
    model = zoo.create_model("shufflenet_v2_x0_5_topk15")
    expected = torchvision_default(torchvision.models.shufflenet_v2_x0_5()).layers
    assert tuple(sparsified_layers(model)) == expected == ("stage2",)
    out = model(torch.randn(1, 3, 64, 64))
    out.sum().backward()


def test_unregistered_percent_and_timm_tag():
    model = zoo.create_model("resnet18_topk7.a1_in1k")
    assert sparsified_layers(model)["layer2"].k == 0.07
    assert model.pretrained_cfg["tag"] == "a1_in1k"


@pytest.mark.parametrize(
    "name, error, match",
    [
        ("resnt18_topk20", factory.UnknownModelError, "closest: resnet18"),
        ("resnet18_topk0", ValueError, "not a Top-K variant name"),
        ("resnt18", factory.UnknownModelError, "closest: resnet18"),
        ("tv:alexnet_topk10.a1_in1k", ValueError, "timm feature"),
    ],
)
def test_unknown_names(name, error, match):
    with pytest.raises(error, match=match):
        zoo.create_model(name)


def test_pretrained_and_weights_path_exclude_each_other(tmp_path):
    with pytest.raises(ValueError, match="either"):
        zoo.create_model("resnet18_topk20", pretrained=True, weights_path=tmp_path / "x.pth")


def test_offline_error_says_what_to_do(monkeypatch):
    """A failed download (no network) becomes one error naming weights_path and the offline route."""
    def unreachable(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(factory, "build_timm", unreachable)
    with pytest.raises(WeightsUnavailableError, match=r"weights_path=.*pretrained='offline'") as info:
        zoo.create_model("tf_efficientnet_lite0_topk10", pretrained=True)
    assert isinstance(info.value.__cause__, OSError)
    monkeypatch.setattr(factory, "build_torchvision", unreachable)
    with pytest.raises(WeightsUnavailableError, match="weights_path="):
        zoo.create_model("alexnet_topk10", pretrained=True)
    with pytest.raises(WeightsUnavailableError, match="no offline weights"):
        zoo.create_model("alexnet_topk10", pretrained="offline")


def test_weights_path_checks(tmp_path):
    torch.manual_seed(1)
    base = torchvision.models.resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": base.state_dict(), "epoch": 3}, path)  # a training checkpoint
    digest = zoo.weights.sha256_of(path)
    model = zoo.create_model("tv:resnet18_topk20", weights_path=path, weights_sha256=digest[:12])
    assert all(torch.equal(model.state_dict()[k], v) for k, v in base.state_dict().items())
    with pytest.raises(ChecksumError, match="sha256"):
        zoo.create_model("tv:resnet18_topk20", weights_path=path, weights_sha256="0" * 64)
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        zoo.create_model("tv:resnet18_topk20", weights_path=tmp_path / "missing.pth")


def test_plain_base_name_gives_the_dense_model():
    """create_model('resnet18') builds the dense base with the same weight options."""
    import torch

    from topk_plugin import sparsified_layers

    dense = factory.create_model("tv:resnet18").eval()
    assert not sparsified_layers(dense)
    sparse = factory.create_model("tv:resnet18_topk20").eval()
    sparse.load_state_dict(dense.state_dict())
    x = torch.randn(1, 3, 64, 64)
    assert list(sparsified_layers(sparse)) == ["layer2"]
    assert not torch.equal(sparse(x), dense(x))
    assert factory.placement_of("resnet18").layers == factory.placement_of("resnet18_topk20").layers == ("layer2",)
