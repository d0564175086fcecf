"""Where the analyses run: the model's own device by default, a user's model never left moved (issue 25, item 6).

CI has no GPU, so "another device" is the meta device: moving there loses the
values, which is exactly what a model left moved (or copied back) would show.
"""
import pytest
import torch
from torch import nn

from topk_plugin.analysis import devices, reconstruct, texture_synthesis, topk_masks
from topk_plugin.analysis.devices import analysis_device, placed

from .conftest import TINY_LAYERS, tiny_net


def _with_bn() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()


def _snapshot(model: nn.Module):
    return [(t.device, t.data_ptr(), t.detach().clone()) for t in (*model.parameters(), *model.buffers())]


def _assert_untouched(model: nn.Module, before) -> None:
    after = [(t.device, t.data_ptr(), t) for t in (*model.parameters(), *model.buffers())]
    for (dev0, ptr0, val0), (dev1, ptr1, val1) in zip(before, after, strict=True):
        assert dev1 == dev0 and ptr1 == ptr0
        assert torch.equal(val1.detach(), val0)


def _forbid_moves(model: nn.Module) -> list:
    """Record every ``.to()/.cuda()/.cpu()`` on the model (they all go through ``_apply``)."""
    calls = []
    real = model._apply

    def spy(fn, *args, **kwargs):
        calls.append(fn)
        return real(fn, *args, **kwargs)

    model._apply = spy
    return calls


@pytest.mark.parametrize("run", [
    lambda target, net: reconstruct(target, net, layers=TINY_LAYERS, max_evals=2, size=None, progress=False),
    lambda target, net: texture_synthesis(target, net, layers=TINY_LAYERS, max_evals=2, size=None, progress=False),
    lambda target, net: topk_masks(target, net, layer="4", size=None),
], ids=["reconstruct", "texture", "masks"])
def test_a_users_model_runs_where_it_is_and_is_not_moved(run, target):
    net = tiny_net()
    before = _snapshot(net)
    moves = _forbid_moves(net)
    seen = []
    net.register_forward_pre_hook(lambda _m, inputs: seen.append(inputs[0].device))
    run(target, net)
    assert moves == []
    assert seen and set(seen) == {next(net.parameters()).device}
    _assert_untouched(net, before)


def test_placed_moves_for_the_duration_and_restores_the_same_tensors():
    model = _with_bn()
    before = _snapshot(model)
    with placed(model, "meta"):
        assert {t.device.type for t in (*model.parameters(), *model.buffers())} == {"meta"}
    _assert_untouched(model, before)
    with pytest.raises(RuntimeError, match="boom"), placed(model, "meta"):
        raise RuntimeError("boom")
    _assert_untouched(model, before)


def test_a_run_on_another_device_leaves_the_users_model_as_it_was(target):
    """The old code moved the model with ``net.to(device)`` and never moved it back."""
    net = tiny_net()
    before = _snapshot(net)
    with pytest.raises((RuntimeError, NotImplementedError)):  # nothing can be read back from the meta device
        topk_masks(target, net, layer="4", size=None, device="meta")
    _assert_untouched(net, before)
    with pytest.raises((RuntimeError, NotImplementedError)):
        reconstruct(target, net, layers=TINY_LAYERS, max_evals=1, size=None, device="meta", progress=False)
    _assert_untouched(net, before)


def test_default_device_is_the_models_or_for_a_name_the_commands_default(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert analysis_device("squeezenet1_1") == torch.device("cuda", 0)  # what local_device gives every command
    assert analysis_device(tiny_net()) == torch.device("cpu")  # a module stays where it is
    assert analysis_device(tiny_net(), "cpu") == torch.device("cpu")
    assert analysis_device(nn.Identity()) == torch.device("cpu")  # nothing to ask


def test_a_model_name_runs_on_the_commands_default_device(monkeypatch, target):
    chosen = []

    def spy(device=None):
        chosen.append(device)
        return torch.device("cpu")

    monkeypatch.setattr(devices, "local_device", spy)
    reconstruct(target, "squeezenet1_1", weights="random", conditions=("identity",), max_evals=1,
                size=48, progress=False)
    assert chosen == [None]


def test_tied_parameters_stay_tied_on_the_other_device():
    a, b = nn.Linear(3, 3), nn.Linear(3, 3)
    b.weight = a.weight
    model = nn.Sequential(a, b)
    with placed(model, "meta"):
        assert model[0].weight is model[1].weight and model[0].weight.device.type == "meta"
    assert model[0].weight is model[1].weight and model[0].weight.device.type == "cpu"
