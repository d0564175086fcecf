"""Placement spec files round-trip and drive sparsify() and create_model()."""
import copy
import json

import pytest
import torch
from torch import nn

import topk_plugin
from topk_plugin import PlacementSpec, load_placement


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Conv2d(6, 6, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1))


SPEC = PlacementSpec(layers={"1": 0.2, "3": 4}, op="topk", options={"mode": "mean"}, model="tiny",
                     provenance={"shape_bias": 0.5})


def test_round_trip(tmp_path):
    path = SPEC.save(tmp_path / "best.json")
    loaded = load_placement(path)
    assert loaded == SPEC
    assert isinstance(loaded.layers["3"], int) and isinstance(loaded.layers["1"], float)
    assert load_placement(str(path)) == SPEC and load_placement(json.loads(path.read_text())) == SPEC


@pytest.mark.parametrize("method", ["module", "hook"])
def test_sparsify_accepts_spec_and_path(tmp_path, method):
    x = torch.randn(2, 3, 9, 9)
    expected = topk_plugin.sparsify(_net(), {"1": 0.2, "3": 4}, mode="mean", method=method)(x)
    path = SPEC.save(tmp_path / "best.json")
    for spec in (SPEC, path):
        model = topk_plugin.sparsify(_net(), spec, method=method)
        layers = topk_plugin.sparsified_layers(model)
        assert {name: m.k for name, m in layers.items()} == {"1": 0.2, "3": 4}
        assert all(m.mode == "mean" for m in layers.values())
        assert torch.equal(model(x), expected)


def test_random_op_in_a_spec():
    spec = PlacementSpec(layers={"1": 0.25}, op="random", options={"seed": 7})
    a = topk_plugin.sparsify(_net(), spec)
    b = topk_plugin.sparsify(_net(), {"1": 0.25}, op="random", seed=7)
    assert isinstance(topk_plugin.sparsified_layers(a)["1"], topk_plugin.RandomK)
    x = torch.randn(2, 3, 9, 9)
    assert torch.equal(a(x), b(x))


def test_create_model_with_placement(tmp_path):
    spec = PlacementSpec(layers={"features.3": 0.1, "features.6": 0.2}, model="squeezenet1_1")
    path = spec.save(tmp_path / "sq.json")
    model = topk_plugin.create_model("tv:squeezenet1_1", placement=path).eval()
    layers = topk_plugin.sparsified_layers(model)
    assert {name: m.k for name, m in layers.items()} == spec.layers
    assert model.topk_variant["rule"] == "placement spec"
    dense = topk_plugin.create_model("tv:squeezenet1_1").eval()
    dense.load_state_dict(model.state_dict())  # same keys: the spec adds none
    manual = topk_plugin.sparsify(copy.deepcopy(dense), spec.layers)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), manual(x))
    with pytest.raises(ValueError, match="_topk suffix"):
        topk_plugin.create_model("tv:squeezenet1_1_topk10", placement=path)


def test_bad_specs_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_placement(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json.*not valid JSON"):
        load_placement(bad)
    bad.write_text(json.dumps({"layers": {"1": 0.1}}))
    with pytest.raises(ValueError, match="not a topk-plugin placement spec"):
        load_placement(bad)
    good = SPEC.to_json()
    with pytest.raises(ValueError, match="version 2"):
        load_placement({**good, "version": 2})
    with pytest.raises(ValueError, match="not a valid fraction"):
        load_placement({**good, "layers": {"1": 1.5}})
    with pytest.raises(ValueError, match=r"options \['dropout'\] are unknown"):
        load_placement({**good, "options": {"dropout": 0.1}})
    with pytest.raises(ValueError, match="non-empty"):
        PlacementSpec(layers={})
    with pytest.raises(ValueError, match="do not also pass k"):
        topk_plugin.sparsify(_net(), SPEC, 0.1)
    with pytest.raises(topk_plugin.UnknownLayerError, match="features.3"):
        topk_plugin.sparsify(_net(), PlacementSpec(layers={"features.3": 0.1}))


def test_sparsify_accepts_a_str_path(tmp_path):
    path = SPEC.save(tmp_path / "best.json")
    x = torch.randn(2, 3, 9, 9)
    assert torch.equal(topk_plugin.sparsify(_net(), str(path))(x), topk_plugin.sparsify(_net(), path)(x))
    with pytest.raises(FileNotFoundError, match="missing.json"):
        topk_plugin.sparsify(_net(), str(tmp_path / "missing.json"))


def test_create_model_refuses_a_spec_made_for_another_model(tmp_path):
    spec = PlacementSpec(layers={"layer2": 0.2}, model="resnet50")
    with pytest.raises(ValueError, match="made for 'resnet50', not 'resnet18'"):
        topk_plugin.create_model("tv:resnet18", placement=spec)
    for name in (None, "resnet18", "tv:resnet18"):  # no name, or the same model, applies
        model = topk_plugin.create_model("tv:resnet18", placement=PlacementSpec(layers={"layer2": 0.2}, model=name))
        assert list(topk_plugin.sparsified_layers(model)) == ["layer2"]
