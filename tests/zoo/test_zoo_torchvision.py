"""The variants as torchvision names: listing, weights enums, the private-API guard."""
import pytest
import torch
import torchvision
from torchvision.models import AlexNet_Weights

import topk_plugin.zoo as zoo
from topk_plugin import sparsified_layers
from topk_plugin.zoo import torchvision_registry


def test_listed(registered):
    names = [n for n in torchvision.models.list_models() if "_topk" in n]
    assert set(names) == set(registered["torchvision"])
    assert len(names) == len(zoo.TORCHVISION) * len(zoo.EAGER_PCTS) * 2
    assert {"alexnet_topk10", "vgg16_topk5", "squeezenet1_1_topk50mean", "mobilenet_v2_topk20"} <= set(names)


def test_weights_enum_is_the_bases():
    for base in zoo.TORCHVISION:
        assert torchvision.models.get_model_weights(f"{base}_topk10") is torchvision.models.get_model_weights(base)


def test_default_weights_use_the_base_enum(monkeypatch):
    """weights="DEFAULT" resolves through AlexNet_Weights; the download is replaced by a local dict."""
    torch.manual_seed(5)
    expected = torchvision.models.alexnet().state_dict()
    asked = []

    def fake_get_state_dict(self, *args, **kwargs):
        asked.append(self)
        return expected

    monkeypatch.setattr(AlexNet_Weights, "get_state_dict", fake_get_state_dict)
    model = torchvision.models.get_model("alexnet_topk10", weights="DEFAULT")
    assert asked == [AlexNet_Weights.DEFAULT]
    state = model.state_dict()
    assert all(torch.equal(state[key], expected[key]) for key in expected)
    assert len(sparsified_layers(model)) == 5


def test_lookup_is_case_insensitive_like_torchvision():
    assert torchvision.models.get_model("ResNet18_TopK20").topk_variant["name"] == "resnet18_topk20"


def test_guard_refuses_a_changed_private_api(monkeypatch):
    from torchvision.models import _api

    monkeypatch.setattr(torchvision, "__version__", "9.9.0")
    monkeypatch.setattr(_api, "register_model", lambda name=None, *, replace=False: None)
    with pytest.raises(torchvision_registry.TorchvisionRegistryError, match=r"torchvision 9\.9\.0.*create_model"):
        torchvision_registry._private_api()
    monkeypatch.delattr(_api, "BUILTIN_MODELS")
    with pytest.raises(torchvision_registry.TorchvisionRegistryError, match="BUILTIN_MODELS"):
        torchvision_registry._private_api()


def test_guard_accepts_the_installed_version():
    register, table = torchvision_registry._private_api()
    assert "alexnet_topk10" in table and callable(register)


def test_shared_squeezenet_weights(shared_dir):
    """The SqueezeNet state dicts in ../shared/weights load into the variants via weights_path."""
    for base in ("squeezenet1_0", "squeezenet1_1"):
        path = shared_dir / "weights" / f"{base}_imagenet_torchvision_norm.pth"
        if not path.is_file():
            pytest.skip(f"{path} is absent")
        expected = torch.load(path, map_location="cpu", weights_only=True)
        model = zoo.create_model(f"tv:{base}_topk10", weights_path=path)
        state = model.state_dict()
        assert list(state) == list(expected)
        assert all(torch.equal(state[k], expected[k]) for k in expected)
        assert list(sparsified_layers(model)) == list(zoo.TORCHVISION[base].layers)
