"""sparsify / unsparsify / sparsified on small models: selection, methods, persistence."""
import copy
import io

import pytest
import torch
from helpers import check_sparsified
from torch import nn

import topk_plugin
from topk_plugin import TopK, sparsified, sparsified_layers, sparsify, unsparsify


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.ReLU()
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = self.block(self.act(self.c1(x)))
        return self.fc(self.pool(x).flatten(1))


class TupleOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.split = Split()

    def forward(self, x):
        return self.split(x)[0]


class Split(nn.Module):
    def forward(self, x):
        return x, x


@pytest.fixture
def net():
    torch.manual_seed(0)
    return Net().eval()


@pytest.fixture
def x():
    return torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("method", ["module", "hook"])
@pytest.mark.parametrize("layers", ["c1", ["c1", "block.1"], "block.*", nn.ReLU, {"c1": 0.5, "block.2": 3}])
def test_selected_layers_only(net, x, method, layers):
    if isinstance(layers, dict):
        sparsify(net, layers, method=method)
        found = sparsified_layers(net)
        assert {n: t.k for n, t in found.items()} == layers
        unsparsify(net)
        return
    check_sparsified(net, layers, 0.25, x, method)


def test_selectors_resolve_in_model_order(net):
    sparsify(net, ["block.2", "c1", nn.BatchNorm2d], 0.1)
    assert list(sparsified_layers(net)) == ["c1", "block.1", "block.2"]


def test_module_method_is_visible_and_persistent(net, x):
    sparsify(net, ["c1", "block"], 0.25)
    text = repr(net)
    assert text.count("(topk): TopK(k=0.25)") == 2
    y = net(x)
    assert torch.equal(copy.deepcopy(net)(x), y)
    buffer = io.BytesIO()
    torch.save(net, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert torch.equal(loaded(x), y)
    assert set(sparsified_layers(loaded)) == {"c1", "block"}
    unsparsify(loaded)
    assert type(loaded.c1) is nn.Conv2d


def test_hook_method_persists_through_copy_and_save(net, x):
    sparsify(net, "block", 0.25, method="hook")
    assert "TopK" not in repr(net)
    y = net(x)
    buffer = io.BytesIO()
    torch.save(net, buffer)
    buffer.seek(0)
    assert torch.equal(torch.load(buffer, weights_only=False)(x), y)
    assert torch.equal(copy.deepcopy(net)(x), y)


@pytest.mark.parametrize("method", ["module", "hook"])
def test_pretrained_weights_load_before_and_after(net, x, method):
    weights = copy.deepcopy(net.state_dict())
    fresh = Net().eval()
    sparsify(fresh, ["c1", "block.0"], 0.5, method=method)
    fresh.load_state_dict(weights, strict=True)  # after sparsifying
    reference = sparsify(copy.deepcopy(net), ["c1", "block.0"], 0.5, method=method)  # before
    assert torch.equal(fresh(x), reference(x))
    assert fresh.state_dict().keys() == weights.keys()


def test_context_manager_restores_only_its_layers(net, x):
    y = net(x)
    sparsify(net, "c1", 0.5)
    y_c1 = net(x)
    with sparsified(net, "block", 0.25) as model:
        assert model is net
        assert set(sparsified_layers(net)) == {"c1", "block"}
        assert not torch.equal(net(x), y_c1)
    assert set(sparsified_layers(net)) == {"c1"}
    assert torch.equal(net(x), y_c1)
    unsparsify(net)
    assert torch.equal(net(x), y)


def test_context_manager_cleans_up_on_error(net):
    with pytest.raises(RuntimeError, match="boom"):
        with sparsified(net, "c1", 0.5):
            raise RuntimeError("boom")
    assert not sparsified_layers(net)


def test_options_reach_the_op(net, x):
    sparsify(net, "c1", 0.25, mode="mean", rank_by="value", ties="threshold", invert=True)
    topk = net.c1.topk
    assert (topk.mode, topk.rank_by, topk.ties, topk.invert) == ("mean", "value", "threshold", True)
    assert "mode='mean'" in repr(topk) and "invert=True" in repr(topk)


def test_train_mode_and_backward(net, x):
    net.train()
    sparsify(net, ["c1", "block.2"], 0.25)
    net(x).sum().backward()
    assert net.c1.weight.grad is not None and net.c1.weight.grad.abs().sum() > 0


def test_list_layers_and_summary(net, x):
    rows = {r.name: r for r in topk_plugin.list_layers(net, x)}
    assert rows["block.1"].output_shape == (2, 8, 8, 8) and rows["block.1"].type == "BatchNorm2d"
    assert rows["fc"].output_shape == (2, 4)
    sparsify(net, {"c1": 0.25, "block.2": 2})
    rows = {r.name: r for r in topk_plugin.list_layers(net, x)}
    assert rows["c1"].sparsified and not rows["act"].sparsified
    assert "c1.topk" not in rows
    summary = {r.layer: r for r in topk_plugin.sparsity_summary(net, x)}
    assert summary["c1"].K == 16 and summary["c1"].positions == 64
    assert summary["c1"].nonzero_fraction == pytest.approx(16 / 64)  # conv output: no zeros
    assert summary["block.2"].K == 2 and summary["block.2"].nonzero_fraction <= 2 / 64
    assert "nonzero_fraction" in topk_plugin.format_table(list(summary.values()))


# --- errors -------------------------------------------------------------------------


def test_unknown_layer_lists_close_names(net):
    with pytest.raises(topk_plugin.UnknownLayerError) as info:
        sparsify(net, "blok.0", 0.1)
    assert "'block.0'" in str(info.value) and "list_layers" in str(info.value)
    with pytest.raises(ValueError):  # also a ValueError for callers who catch that
        sparsify(net, "nothing*", 0.1)
    with pytest.raises(topk_plugin.UnknownLayerError, match="module type Conv3d"):
        sparsify(net, nn.Conv3d, 0.1)
    assert not sparsified_layers(net)


@pytest.mark.parametrize("k", [0, -1, 1.5, 2.0, "0.1"])
def test_bad_k_fails_before_changing_the_model(net, k):
    with pytest.raises((ValueError, TypeError)):
        sparsify(net, ["c1", "block.0"], k)
    assert not sparsified_layers(net)


def test_missing_k_and_bad_method(net):
    with pytest.raises(ValueError, match="no k"):
        sparsify(net, "c1")
    with pytest.raises(ValueError, match="method"):
        sparsify(net, "c1", 0.1, method="surgery")


def test_double_sparsify_is_refused(net):
    sparsify(net, "c1", 0.1)
    with pytest.raises(ValueError, match="already sparsified"):
        sparsify(net, "c1", 0.2, method="hook")


def test_non_tensor_output_is_a_clear_error():
    model = TupleOut()
    sparsify(model, "split", 0.5)
    with pytest.raises(topk_plugin.NotATensorError, match="tuple"):
        model(torch.randn(1, 2, 3, 3))


def test_2d_output_is_a_clear_error(net, x):
    sparsify(net, "fc", 0.5)
    with pytest.raises(ValueError, match="2-D"):
        net(x)


def test_unsparsify_unknown(net):
    sparsify(net, "c1", 0.1)
    with pytest.raises(ValueError, match="no sparsified layer"):
        unsparsify(net, "act")


def test_topk_module_repr_and_validation():
    assert repr(TopK(0.1)) == "TopK(k=0.1)"
    assert repr(TopK(5, channel_dim=-1, rank_by="value")) == "TopK(k=5, rank_by='value', channel_dim=-1)"
    with pytest.raises(ValueError):
        TopK(0)
    with pytest.raises(ValueError):
        TopK(0.1, channel_dim=2)


def test_sequential_target_applies_topk_once(x):
    """nn.Sequential iterates its children: the topk child must not run inside it."""
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 1))
    expected = topk_plugin.spatial_topk(seq(x), 0.25, invert=True)  # not idempotent
    outer = nn.Sequential(seq)
    sparsify(outer, "0", 0.25, invert=True)
    assert torch.equal(outer(x), expected)
    assert len(seq) == 3 and [type(m) for m in seq] == [nn.Conv2d, nn.ReLU, nn.Conv2d]
    assert isinstance(seq[-1], nn.Conv2d) and len(seq[:2]) == 2


class DenseLike(nn.ModuleDict):
    """Runs its members by iterating over itself, like timm's DenseBlock."""

    def __init__(self):
        super().__init__({"a": nn.Conv2d(3, 4, 1), "b": nn.Conv2d(3, 4, 1)})

    def forward(self, x):
        return torch.cat([layer(x) for _, layer in self.items()], 1)


class ListLike(nn.ModuleList):
    def forward(self, x):
        for layer in self:
            x = layer(x)
        return x


@pytest.mark.parametrize("build", [DenseLike, lambda: ListLike([nn.Conv2d(3, 4, 1), nn.ReLU()])])
def test_container_targets_apply_topk_once(build, x):
    torch.manual_seed(0)
    model = nn.Sequential(build())
    expected = topk_plugin.spatial_topk(model[0](x), 0.25, invert=True)  # not idempotent
    sparsify(model, "0", 0.25, invert=True)
    assert torch.equal(model(x), expected)
    container = model[0]
    assert len(container) == 2 and all(not isinstance(m, TopK) for m in (container.values() if isinstance(container, nn.ModuleDict) else container))
    assert "topk" in dict(container.named_children())
    unsparsify(model)
    assert len(model[0]) == 2


def test_leaving_the_block_after_the_body_removed_the_layers_keeps_the_users_error(net):
    """Exit removes only what is still attached, so the body's own error surfaces unchanged."""
    with pytest.raises(KeyError, match="the user's error") as info:
        with sparsified(net, ["c1", "block"], 0.5):
            unsparsify(net, "c1")
            raise KeyError("the user's error")
    assert info.value.__context__ is None
    assert not sparsified_layers(net)


def test_context_manager_uses_the_same_default_method_as_sparsify(net, x):
    """sparsify() and sparsified() both attach visible modules, so FX tracing inside the block sees Top-K."""
    import torch.fx

    with sparsified(net, "c1", 0.25):
        assert isinstance(net.c1.topk, topk_plugin.TopK)
        traced = torch.fx.symbolic_trace(net)
        assert torch.equal(traced(x), net(x))
    assert torch.equal(torch.fx.symbolic_trace(net)(x), net(x))
