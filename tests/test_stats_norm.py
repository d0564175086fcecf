"""op='stats-norm' (ChannelStatsNorm): the op against a brute-force float64 reference, constant channels,
gradients, dtypes and layouts; sparsify, calibrate against a hand computation, and placement specs bit for bit."""
import copy
import pickle

import pytest
import torch
from reference import reference_channel_stats, reference_stats_norm, reference_topk
from torch import nn

import topk_plugin
from topk_plugin import ChannelStatsNorm, PlacementSpec, calibrate, channel_stats_norm, sparsify
from topk_plugin.stats_norm import channel_stats


def _input(shape, channel_dim, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * 2 + 0.5).to(dtype)
    # constant channels: sd_i = 0
    if channel_dim == 1:
        x[0, 1] = 2.5
        x[-1, 0] = 0.0
    else:
        x[0, :, 1] = 2.5
        x[-1, :, 0] = 0.0
    return x


SHAPES = [((3, 5, 7, 6), 1), ((2, 4, 9), 1), ((2, 3, 3, 4, 5), 1), ((3, 11, 5), -1), ((2, 1, 3), -1)]


def _constants(x, channel_dim, seed=1):
    c = x.shape[channel_dim]
    g = torch.Generator().manual_seed(seed)
    return torch.randn(c, generator=g, dtype=torch.float64), torch.rand(c, generator=g, dtype=torch.float64) + 0.5


@pytest.mark.parametrize("shape, channel_dim", SHAPES)
@pytest.mark.parametrize("strength", [1.0, 0.35])
def test_matches_the_float64_reference(shape, channel_dim, strength):
    x = _input(shape, channel_dim)
    mean, std = _constants(x, channel_dim)
    out = channel_stats_norm(x, strength, mean=mean, std=std, channel_dim=channel_dim)
    expected = reference_stats_norm(x, strength, mean, std, channel_dim=channel_dim)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    assert out.dtype == x.dtype and out.shape == x.shape


@pytest.mark.parametrize("shape, channel_dim", SHAPES)
def test_float32_matches_the_reference_and_constant_channels_are_exact(shape, channel_dim):
    x = _input(shape, channel_dim, dtype=torch.float32)
    mean, std = _constants(x, channel_dim)
    for a in (1.0, 0.35):
        out = channel_stats_norm(x, a, mean=mean, std=std, channel_dim=channel_dim)
        torch.testing.assert_close(out, reference_stats_norm(x, a, mean, std, channel_dim=channel_dim),
                                   rtol=1e-5, atol=1e-5)
        # a constant channel (sd_i = 0) gets (1 - a) x + a mu_D: no NaN, no eps-sized noise
        c0, c1 = (1, 0)
        const = out[0, c0] if channel_dim == 1 else out[0, :, c0]
        expected = (1 - a) * 2.5 + a * mean[c0].item()
        assert torch.isfinite(out).all()
        torch.testing.assert_close(const, torch.full_like(const, expected), rtol=1e-6, atol=1e-6)
        zero = out[-1, c1] if channel_dim == 1 else out[-1, :, c1]
        torch.testing.assert_close(zero, torch.full_like(zero, a * mean[c1].item()), rtol=1e-6, atol=1e-6)


def test_values_by_hand():
    x = torch.tensor([[[1.0, 3.0], [2.0, 2.0]]], dtype=torch.float64)  # (1, 2, 2): channel 1 constant
    out = channel_stats_norm(x, 1.0, mean=[10.0, -1.0], std=[2.0, 3.0], eps=1e-5)
    # channel 0: mu 2, sd 1 -> z = -1/(1+eps), +1/(1+eps) -> 10 -+ 2/(1+eps); channel 1: mu_D
    assert out.flatten().tolist() == pytest.approx([10 - 2 / (1 + 1e-5), 10 + 2 / (1 + 1e-5), -1.0, -1.0], abs=1e-12)
    half = channel_stats_norm(x, 0.5, mean=[10.0, -1.0], std=[2.0, 3.0])
    assert half[0, 1].tolist() == [0.5, 0.5]  # (1 - a) * 2 + a * (-1)


def test_spatial_pattern_is_kept_and_statistics_move_to_the_dataset():
    x = torch.randn(3, 3, 6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) * 2 + 1
    mean, std = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.5, 3.0, 1.0])
    out = channel_stats_norm(x, 1.0, mean=mean, std=std, eps=1e-12)
    mu, sd = reference_channel_stats(out)
    torch.testing.assert_close(mu, mean.expand_as(mu).double())
    torch.testing.assert_close(sd, std.expand_as(sd).double())
    z = lambda t: (t - t.mean((2, 3), keepdim=True)) / t.std((2, 3), keepdim=True)  # noqa: E731
    torch.testing.assert_close(z(out), z(x))


def test_channels_last_half_and_bfloat16():
    x = _input((2, 4, 5, 5), 1, dtype=torch.float32).contiguous(memory_format=torch.channels_last)
    mean, std = _constants(x, 1)
    out = channel_stats_norm(x, 0.5, mean=mean, std=std)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, channel_stats_norm(x.contiguous(), 0.5, mean=mean, std=std))
    for dtype in (torch.float16, torch.bfloat16):
        # large values: the variance (and sd_D / eps for the constant channels) would overflow float16
        low = channel_stats_norm(x.to(dtype) * 100, 1.0, mean=mean, std=std * 100)
        assert low.dtype == dtype and torch.isfinite(low).all()
        torch.testing.assert_close(low.float(), channel_stats_norm(x.to(dtype).float() * 100, 1.0, mean=mean,
                                                                   std=std * 100), rtol=2e-2, atol=2e-1)


def test_nan_in_a_channel_stays_in_that_channel():
    x = _input((1, 3, 4, 4), 1)
    x[0, 2, 1, 1] = float("nan")
    out = channel_stats_norm(x, 1.0, mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0])
    assert out[0, 2].isnan().all() and torch.isfinite(out[0, :2]).all()


@pytest.mark.parametrize("channel_dim, shape", [(1, (2, 3, 3, 4)), (-1, (2, 5, 3))])
@pytest.mark.parametrize("strength", [1.0, 0.35])
def test_gradcheck(channel_dim, shape, strength):
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4), requires_grad=True)
    mean, std = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64), torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda v: channel_stats_norm(v, strength, mean=mean, std=std,
                                                                 channel_dim=channel_dim), (x,))


def test_gradient_of_a_constant_channel_is_finite():
    x = _input((2, 3, 4, 4), 1).requires_grad_()
    channel_stats_norm(x, 0.5, mean=[0.0, 1.0, 2.0], std=[1.0, 1.0, 1.0]).pow(2).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_channel_stats_against_the_reference():
    for shape, channel_dim in SHAPES:
        x = _input(shape, channel_dim)
        mu, sd = channel_stats(x, channel_dim)
        ref_mu, ref_sd = reference_channel_stats(x, channel_dim)
        torch.testing.assert_close(mu, ref_mu, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(sd, ref_sd, rtol=1e-12, atol=1e-12)


def test_errors_name_the_problem():
    x = torch.randn(1, 3, 4, 4)
    ok = dict(mean=[0.0] * 3, std=[1.0] * 3)
    for bad in (0, 1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match="strength=.* must lie in \\(0, 1\\]"):
            channel_stats_norm(x, bad, **ok)
    for bad in (True, "0.5", None):
        with pytest.raises(TypeError, match="strength must be a number"):
            channel_stats_norm(x, bad, **ok)
    with pytest.raises(ValueError, match="needs the dataset constants.*calibrate"):
        channel_stats_norm(x, 0.5, mean=None, std=None)
    with pytest.raises(ValueError, match="mean has shape \\(2,\\) but the input has 3 channels"):
        channel_stats_norm(x, 0.5, mean=[0.0, 0.0], std=[1.0] * 3)
    with pytest.raises(ValueError, match="eps=0 must be a number > 0"):
        channel_stats_norm(x, 0.5, eps=0, **ok)
    with pytest.raises(ValueError, match="2-D output.*no positions"):
        channel_stats_norm(torch.randn(2, 3), 0.5, **ok)
    with pytest.raises(TypeError, match="floating tensor"):
        channel_stats_norm(torch.ones(1, 3, 2, 2, dtype=torch.int64), 0.5, **ok)
    with pytest.raises(ValueError, match="channel_dim=2 is invalid"):
        channel_stats_norm(x, 0.5, channel_dim=2, **ok)
    with pytest.raises(ValueError, match="both mean= and std="):
        ChannelStatsNorm(0.5, mean=[0.0, 1.0])


# --- the module and sparsify -------------------------------------------------------------


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Conv2d(6, 5, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(5, 4)).double()


def test_uncalibrated_model_says_what_to_run():
    model = sparsify(_net(), ["1", "3"], op="stats-norm", strength=0.5)
    assert "uncalibrated" in repr(model)
    with pytest.raises(ValueError, match="not calibrated: run topk_plugin.calibrate\\(model, images\\)"):
        model(torch.randn(1, 3, 9, 9, dtype=torch.float64))


def test_sparsify_interface_has_strength_not_k():
    with pytest.raises(ValueError, match="op='stats-norm' has no K.*pass strength=0.2"):
        sparsify(_net(), ["1"], 0.2, op="stats-norm")
    with pytest.raises(ValueError, match="no strength for layer '1': pass strength="):
        sparsify(_net(), ["1"], op="stats-norm")
    with pytest.raises(ValueError, match="strength= is only used with op='stats-norm'"):
        sparsify(_net(), ["1"], 0.2, strength=0.5)
    with pytest.raises(ValueError, match="fill= has no meaning for op='stats-norm'"):
        sparsify(_net(), ["1"], op="stats-norm", strength=0.5, fill="shift")
    with pytest.raises(ValueError, match="mode= has no meaning for op='stats-norm'"):
        sparsify(_net(), ["1"], op="stats-norm", strength=0.5, mode="mean")
    with pytest.raises(ValueError, match="has no K"):
        sparsify(_net(), {"1": {"k": 0.2}}, op="stats-norm", strength=0.5)
    model = sparsify(_net(), {"1": 0.2, "3": {"strength": 0.7, "eps": 1e-3}}, op="stats-norm", method="hook")
    ops = topk_plugin.sparsified_layers(model)
    assert (ops["1"].strength, ops["3"].strength, ops["3"].eps) == (0.2, 0.7, 1e-3)
    assert set(model.state_dict()) == set(_net().state_dict())  # non-persistent constants
    calibrate(model, torch.randn(2, 3, 9, 9, dtype=torch.float64))
    assert [r.k for r in topk_plugin.sparsity_summary(model, torch.randn(1, 3, 9, 9, dtype=torch.float64))] == [None,
                                                                                                              None]


def _reference_constants(net, batches, k, strength):
    """By hand, layer by layer: layer 1 is a fill='shift' Top-K measured on dense inputs; layer 3 is a
    stats-norm op measured with layer 1 shifted (as it runs at inference)."""
    x = torch.cat(batches)
    with torch.no_grad():
        a1 = net[1](net[0](x))
        s1 = (a1 - reference_topk(a1, k)).mean(dim=(0, 2, 3))
        a3 = net[3](net[2](reference_topk(a1, k, fill="shift", shift=s1)))
        mu, sd = reference_channel_stats(a3)
    return s1, (mu.mean(0), sd.mean(0))


@pytest.mark.parametrize("method", ["module", "hook"])
def test_calibrate_matches_a_hand_computation(method):
    torch.manual_seed(1)
    batches = [torch.randn(4, 3, 9, 9, dtype=torch.float64) for _ in range(3)]
    model = sparsify(_net(), ["1"], 0.25, fill="shift", method=method)
    sparsify(model, ["3"], op="stats-norm", strength=0.5, method=method)
    model.train()
    constants = calibrate(model, batches)
    assert model.training and list(constants) == ["1", "3"]
    shift, (mean, std) = _reference_constants(_net(), batches, 0.25, 0.5)
    torch.testing.assert_close(constants["1"], shift, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(constants["3"][0], mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(constants["3"][1], std, rtol=1e-12, atol=1e-12)
    op = topk_plugin.sparsified_layers(model)["3"]
    assert op.mean is constants["3"][0] and op.std is constants["3"][1] and op.mean.dtype == torch.float64
    again = calibrate(model, (b for b in batches), layers="3")  # a generator; layer 1 keeps its shift
    torch.testing.assert_close(again["3"][0], mean, rtol=1e-12, atol=1e-12)


def test_a_failed_calibration_keeps_the_constants():
    model = sparsify(_net().float(), ["1", "3"], op="stats-norm", strength=0.5)
    calibrate(model, torch.rand(4, 3, 9, 9))
    before = {n: (op.mean.clone(), op.std.clone()) for n, op in topk_plugin.sparsified_layers(model).items()}
    with pytest.raises(RuntimeError):
        calibrate(model, [torch.rand(4, 3, 9, 9), torch.rand(4, 5, 9, 9)])
    for name, op in topk_plugin.sparsified_layers(model).items():
        assert torch.equal(op.mean, before[name][0]) and torch.equal(op.std, before[name][1])


@pytest.mark.parametrize("method", ["module", "hook"])
def test_spec_reproduces_the_model_bit_for_bit(tmp_path, method):
    torch.manual_seed(2)
    model = sparsify(_net().float(), {"1": 0.35, "3": {"strength": 1.0, "eps": 1e-4}}, op="stats-norm", method=method)
    calibrate(model, [torch.randn(4, 3, 9, 9)])
    spec = PlacementSpec.from_model(model, model_name="tiny", provenance={"calibration": "4 random images"})
    data = spec.to_json()
    assert data["op"] == "stats-norm" and data["layers"] == {"1": {"strength": 0.35}, "3": {"strength": 1.0, "eps": 1e-4}}
    assert set(data["stats"]) == {"1", "3"} and set(data["stats"]["1"]) == {"mean", "std"}
    loaded = topk_plugin.load_placement(spec.save(tmp_path / "spec.json"))
    assert loaded == spec
    rebuilt = sparsify(_net().float(), tmp_path / "spec.json", method=method)  # a fresh model
    for name, op in topk_plugin.sparsified_layers(rebuilt).items():
        original = topk_plugin.sparsified_layers(model)[name]
        assert torch.equal(op.mean, original.mean) and torch.equal(op.std, original.std)
    x = torch.randn(2, 3, 9, 9)
    assert torch.equal(rebuilt(x), model(x))
    assert torch.equal(copy.deepcopy(rebuilt)(x), model(x))
    assert torch.equal(pickle.loads(pickle.dumps(rebuilt))(x), model(x))


def test_half_precision_keeps_the_constants_exact():
    model = sparsify(_net().float(), ["1"], op="stats-norm", strength=0.5)
    calibrate(model, torch.rand(4, 3, 9, 9))
    exact = PlacementSpec.from_model(model).stats
    model.half()
    assert topk_plugin.sparsified_layers(model)["1"].mean.dtype == torch.float64
    assert PlacementSpec.from_model(model).stats == exact
    assert model(torch.rand(1, 3, 9, 9).half()).dtype == torch.float16


def test_spec_validation():
    with pytest.raises(ValueError, match="op='stats-norm' must be \\{\"strength\": a\\}"):
        PlacementSpec(layers={"1": 0.2}, op="stats-norm")
    with pytest.raises(ValueError, match="strength=1.5 must lie"):
        PlacementSpec(layers={"1": {"strength": 1.5}}, op="stats-norm")
    with pytest.raises(ValueError, match="options \\['fill'\\] are unknown for op='stats-norm'"):
        PlacementSpec(layers={"1": {"strength": 0.5}}, op="stats-norm", options={"fill": "shift"})
    with pytest.raises(ValueError, match="'stats' values but its op is 'topk'"):
        PlacementSpec(layers={"1": 0.2}, stats={"1": {"mean": [0.0], "std": [1.0]}})
    with pytest.raises(ValueError, match="stats of '1' must be"):
        PlacementSpec(layers={"1": {"strength": 0.5}}, op="stats-norm", stats={"1": {"mean": [0.0], "std": [1.0, 2.0]}})
    with pytest.raises(ValueError, match="stats for '9', which is not in layers"):
        PlacementSpec(layers={"1": {"strength": 0.5}}, op="stats-norm", stats={"9": {"mean": [0.0], "std": [1.0]}})
    mixed = sparsify(sparsify(_net(), ["1"], 0.2), ["3"], op="stats-norm", strength=0.5)
    with pytest.raises(ValueError, match="one op.*ChannelStatsNorm.*TopK"):
        PlacementSpec.from_model(mixed)
    # a hand-written spec without stats is calibrated after loading
    model = sparsify(_net(), PlacementSpec(layers={"1": {"strength": 0.5}}, op="stats-norm"))
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    with pytest.raises(ValueError, match="calibrate"):
        model(x)
    calibrate(model, [x])
    assert PlacementSpec.from_model(model).stats["1"]["mean"] == topk_plugin.sparsified_layers(model)["1"].mean.tolist()
