"""fill="zero" | "shift" | "image-mean": the op against the brute-force reference, and calibrate()
against a hand-written layer-by-layer calibration."""
import copy

import pytest
import torch
from reference import reference_topk
from torch import nn

import topk_plugin
from topk_plugin import PlacementSpec, TopK, calibrate, sparsify, spatial_topk


@pytest.mark.parametrize("fill", ["zero", "shift", "image-mean"])
@pytest.mark.parametrize("opts", [dict(), dict(mode="mean"), dict(invert=True), dict(rank_by="value", ties="threshold"),
                                  dict(channel_dim=-1)])
def test_fill_matches_reference(fill, opts):
    torch.manual_seed(0)
    x = torch.randn(3, 5, 7, 6, dtype=torch.float64)
    if opts.get("channel_dim") == -1:
        x = torch.randn(3, 11, 5, dtype=torch.float64)
    x[0, 1] = x[0, 1].round()  # ties
    shift = torch.randn(5, dtype=torch.float64) if fill == "shift" else None
    out = spatial_topk(x, 0.2, fill=fill, shift=shift, **opts)
    expected = reference_topk(x, 0.2, fill=fill, shift=shift, **opts)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_fill_values_by_hand():
    x = torch.tensor([[[4.0, -2.0, 1.0, 0.0]]], dtype=torch.float64)
    assert spatial_topk(x, 1, fill="image-mean").tolist() == [[[4.0, -1 / 3, -1 / 3, -1 / 3]]]
    assert spatial_topk(x, 1, fill="shift", shift=[0.5]).tolist() == [[[4.5, 0.5, 0.5, 0.5]]]
    assert spatial_topk(x, 4, fill="image-mean").tolist() == x.tolist()  # nothing removed
    assert spatial_topk(x, 4, fill="shift", shift=[1.0]).tolist() == (x + 1).tolist()


def test_fill_keeps_channels_last_and_gradients():
    x = torch.randn(2, 4, 5, 5).contiguous(memory_format=torch.channels_last)
    for fill, shift in (("shift", torch.ones(4)), ("image-mean", None)):
        out = spatial_topk(x, 0.2, fill=fill, shift=shift)
        assert out.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(out, spatial_topk(x.contiguous(), 0.2, fill=fill, shift=shift))  # sum order
    t = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: spatial_topk(v, 0.3, fill="image-mean"), (t,))
    assert torch.autograd.gradcheck(lambda v: spatial_topk(v, 0.3, fill="shift", shift=[1.0, -2.0]), (t,))


def test_fill_errors():
    x = torch.randn(1, 3, 4, 4)
    with pytest.raises(ValueError, match="fill='shift' needs the per-channel shift.*calibrate"):
        spatial_topk(x, 0.2, fill="shift")
    with pytest.raises(ValueError, match="shape \\(2,\\) but the input has 3 channels"):
        spatial_topk(x, 0.2, fill="shift", shift=[1.0, 2.0])
    with pytest.raises(ValueError, match="only used with fill='shift'"):
        spatial_topk(x, 0.2, shift=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="fill='mean' is not one of"):
        TopK(0.2, fill="mean")
    with pytest.raises(ValueError, match="op='random' supports only fill='zero'"):
        sparsify(_net(), ["1"], 0.2, op="random", fill="shift")
    with pytest.raises(ValueError, match="calibrate"):
        sparsify(_net(), ["1"], 0.2, fill="shift")(torch.randn(1, 3, 9, 9, dtype=torch.float64))


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Conv2d(6, 5, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(5, 4)).double()


def _reference_shifts(net, batches, k):
    """Layer by layer by hand: the shift of layer 1 on dense inputs, then layer 3 with layer 1 shifted."""
    x = torch.cat(batches)
    with torch.no_grad():
        a1 = net[1](net[0](x))
        s1 = (a1 - reference_topk(a1, k)).mean(dim=(0, 2, 3))
        a3 = net[3](net[2](reference_topk(a1, k, fill="shift", shift=s1)))
        s3 = (a3 - reference_topk(a3, k)).mean(dim=(0, 2, 3))
    return {"1": s1, "3": s3}


@pytest.mark.parametrize("method", ["module", "hook"])
def test_calibrate_matches_layer_by_layer_reference(method):
    torch.manual_seed(1)
    batches = [torch.randn(4, 3, 9, 9, dtype=torch.float64) for _ in range(3)]
    model = sparsify(_net(), ["1", "3"], 0.25, fill="shift", method=method).train()
    shifts = calibrate(model, batches)
    assert model.training  # mode restored
    expected = _reference_shifts(_net(), batches, 0.25)
    assert list(shifts) == ["1", "3"]
    for name in expected:
        torch.testing.assert_close(shifts[name], expected[name], rtol=1e-12, atol=1e-12)
        assert topk_plugin.sparsified_layers(model)[name].shift is shifts[name]
    # one tensor, a DataLoader-style list of (x, y) pairs and a generator give the same shifts
    for images in (torch.cat(batches), [(b, None) for b in batches], (b for b in batches)):
        again = calibrate(model, images)
        for name in expected:
            torch.testing.assert_close(again[name], expected[name], rtol=1e-12, atol=1e-12)
    assert set(model.state_dict()) == set(_net().state_dict())  # keys unchanged


def test_calibrate_only_named_layers_and_errors():
    batches = [torch.randn(2, 3, 9, 9, dtype=torch.float64)]
    model = sparsify(_net(), ["1", "3"], 0.25, fill="shift")
    calibrate(model, batches)
    ops = topk_plugin.sparsified_layers(model)
    before = ops["1"].shift
    calibrate(model, [b * 2 for b in batches], layers="3")
    assert ops["1"].shift is before
    with pytest.raises(ValueError, match="no fill='shift' or stats-norm op.*layers to calibrate in this model: \\['1', '3'\\]"):
        calibrate(model, batches, layers=["5"])
    with pytest.raises(ValueError, match="no layer of the model has fill='shift'"):
        calibrate(sparsify(_net(), ["1"], 0.25), batches)
    with pytest.raises(ValueError, match="never ran"):
        calibrate(sparsify(_net(), ["1"], 0.25, fill="shift"), [])


@pytest.mark.parametrize("method", ["module", "hook"])
def test_shift_spec_round_trips_bit_for_bit(tmp_path, method):
    torch.manual_seed(2)
    model = sparsify(_net().float(), {"1": 0.2, "3": 3}, fill="shift", method=method)
    calibrate(model, [torch.randn(4, 3, 9, 9)])
    x = torch.randn(2, 3, 9, 9)
    spec = PlacementSpec.from_model(model, model_name="tiny", provenance={"calibration": "4 random images"})
    loaded = topk_plugin.load_placement(spec.save(tmp_path / "spec.json"))
    assert loaded == spec and loaded.options == {"fill": "shift"} and set(loaded.shift) == {"1", "3"}
    rebuilt = sparsify(_net().float(), tmp_path / "spec.json", method=method)
    for name, op in topk_plugin.sparsified_layers(rebuilt).items():
        assert torch.equal(op.shift, topk_plugin.sparsified_layers(model)[name].shift)
    assert torch.equal(rebuilt(x), model(x))
    assert torch.equal(copy.deepcopy(rebuilt)(x), model(x))


def test_spec_rejects_bad_shifts():
    with pytest.raises(ValueError, match="shift for 'features.9', which is not in layers"):
        PlacementSpec(layers={"1": 0.2}, options={"fill": "shift"}, shift={"features.9": [1.0]})
    with pytest.raises(ValueError, match="do not set \"fill\": \"shift\""):
        PlacementSpec(layers={"1": 0.2}, shift={"1": [1.0]})
    with pytest.raises(ValueError, match="options differ"):
        PlacementSpec.from_model(sparsify(_net(), {"1": 0.2, "3": {"k": 0.2, "mode": "mean"}}))


def test_spec_without_shift_is_calibrated_after_loading():
    """A hand-written spec may name fill='shift' alone: the model then asks for calibrate()."""
    spec = PlacementSpec(layers={"1": 0.2}, options={"fill": "shift"})
    model = sparsify(_net(), spec)
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    assert "uncalibrated" in repr(model)
    with pytest.raises(ValueError, match="calibrate"):
        model(x)
    calibrate(model, [x])
    assert PlacementSpec.from_model(model).shift["1"] == topk_plugin.sparsified_layers(model)["1"].shift.tolist()


def _shift_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Conv2d(6, 6, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1))


def test_a_failed_calibration_keeps_the_shifts_there_were():
    model = sparsify(_shift_net(), ["1", "3"], 0.3, fill="shift")
    calibrate(model, torch.rand(4, 3, 10, 10))
    before = {name: op.shift.clone() for name, op in topk_plugin.sparsified_layers(model).items()}
    with pytest.raises(RuntimeError):
        calibrate(model, [torch.rand(4, 3, 10, 10), torch.rand(4, 5, 10, 10)])  # the second batch cannot run
    after = {name: op.shift for name, op in topk_plugin.sparsified_layers(model).items()}
    assert all(torch.equal(after[name], before[name]) for name in before)
    model(torch.rand(1, 3, 10, 10))  # still runs


@pytest.mark.parametrize("method", ["module", "hook"])
def test_half_precision_keeps_the_shift_exact(method):
    model = sparsify(_shift_net(), ["1"], 0.3, fill="shift", method=method)
    calibrate(model, torch.rand(4, 3, 10, 10))
    exact = PlacementSpec.from_model(model).shift
    model.half()
    assert topk_plugin.sparsified_layers(model)["1"].shift.dtype == torch.float64
    assert PlacementSpec.from_model(model).shift == exact
    assert model(torch.rand(1, 3, 10, 10).half()).dtype == torch.float16
