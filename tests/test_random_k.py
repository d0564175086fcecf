"""The random-K control: exactly K random positions per (sample, channel), seeded."""
import copy
import pickle

import pytest
import torch
from reference import reference_k
from torch import nn

import topk_plugin
from topk_plugin.functional import random_k, random_mask


def _rows(t: torch.Tensor, channel_dim: int) -> torch.Tensor:
    moved = t.movedim(channel_dim, 1)
    return moved.reshape(moved.shape[0], moved.shape[1], -1)


CASES = [
    ((2, 3, 7, 5), 0.1, 1),
    ((2, 3, 7, 5), 0.5, 1),
    ((1, 4, 9), 3, 1),
    ((2, 2, 3, 4, 5), 0.2, 1),
    ((2, 10, 6), 0.25, -1),  # (n, tokens, c)
    ((2, 3, 4, 4), 1.0, 1),
]


@pytest.mark.parametrize("shape,k,channel_dim", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_keeps_exactly_k_of_the_input(shape, k, channel_dim, dtype):
    x = torch.randn(shape).to(dtype)
    x[x == 0] = 1.0  # a kept entry must be recognisable as non-zero
    y = random_k(x, k, generator=torch.Generator().manual_seed(0), channel_dim=channel_dim)
    kept = _rows(y != 0, channel_dim)
    positions = kept.shape[-1]
    assert y.dtype == dtype and y.shape == x.shape
    assert (kept.sum(-1) == reference_k(k, positions)).all()
    assert torch.equal(y[y != 0], x[y != 0])  # kept values pass unchanged


def test_invert_keeps_the_complement():
    x = torch.randn(2, 3, 6, 6) + 10
    mask = random_mask(x, 0.2, generator=torch.Generator().manual_seed(4))
    y = random_k(x, 0.2, generator=torch.Generator().manual_seed(4), invert=True)
    assert torch.equal(y != 0, ~mask)
    assert ((y != 0).sum((2, 3)) == 36 - 7).all()


def test_seed_repeats_and_differs():
    x = torch.randn(4, 8, 10, 10)
    a = random_k(x, 0.1, generator=torch.Generator().manual_seed(1))
    b = random_k(x, 0.1, generator=torch.Generator().manual_seed(1))
    c = random_k(x, 0.1, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_selection_ignores_values_and_is_uniform():
    """Every position is chosen about K/L of the time, large values no more than small ones."""
    x = torch.arange(16.0).view(1, 1, 4, 4).expand(4000, 1, 4, 4).contiguous()
    mask = random_mask(x, 4, generator=torch.Generator().manual_seed(0))
    freq = mask.float().mean(0).flatten()  # expected 4 / 16 = 0.25 each
    assert (freq - 0.25).abs().max() < 0.03  # ~4.4 standard errors at n=4000
    top_quarter = x.flatten(1) >= 12
    assert abs(mask.flatten(1)[top_quarter].float().mean().item() - 0.25) < 0.03


def test_channels_last_layout_kept():
    x = torch.randn(2, 5, 6, 6).to(memory_format=torch.channels_last)
    y = random_k(x, 0.3, generator=torch.Generator().manual_seed(0))
    assert y.is_contiguous(memory_format=torch.channels_last)


def test_mean_mode_against_brute_force():
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    mask = random_mask(x, 0.2, generator=torch.Generator().manual_seed(7))
    y = random_k(x, 0.2, generator=torch.Generator().manual_seed(7), mode="mean")
    expected = torch.zeros_like(x)
    for i in range(2):
        for c in range(3):
            m = mask[i, c]
            expected[i, c][m] = x[i, c][m].mean()
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-12)


def test_gradient_passes_only_where_kept():
    x = torch.randn(2, 3, 5, 5, requires_grad=True)
    mask = random_mask(x.detach(), 0.2, generator=torch.Generator().manual_seed(3))
    random_k(x, 0.2, generator=torch.Generator().manual_seed(3)).sum().backward()
    assert torch.equal(x.grad, mask.float())


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="not a valid fraction"):
        random_k(torch.randn(1, 2, 3, 3), 1.5)
    with pytest.raises(ValueError, match="2-D"):
        random_k(torch.randn(4, 5), 0.1)
    with pytest.raises(ValueError, match="mode="):
        random_k(torch.randn(1, 2, 3, 3), 0.1, mode="median")


def test_module_stream_reset_and_copies():
    m = topk_plugin.RandomK(0.2, seed=5)
    x = torch.randn(2, 4, 6, 6)
    first, second = m(x), m(x)
    assert not torch.equal(first, second)  # a new draw per call
    m.reset()
    assert torch.equal(m(x), first)
    m.reset()
    for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert torch.equal(clone(x), first)  # a copy restarts from the seed
    assert "seed=5" in repr(m) and m.state_dict() == {}


@pytest.mark.parametrize("method", ["module", "hook"])
def test_sparsify_op_random(method):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU())
    x = torch.randn(2, 3, 10, 10)
    dense = model(x)
    topk_plugin.sparsify(model, ["1", "3"], 0.25, op="random", seed=3, method=method)
    layers = topk_plugin.sparsified_layers(model)
    assert all(isinstance(m, topk_plugin.RandomK) for m in layers.values())
    assert layers["1"].seed != layers["3"].seed  # one stream per layer
    out = model(x)
    assert ((out != 0).sum((2, 3)) <= reference_k(0.25, 36)).all()
    again = copy.deepcopy(topk_plugin.unsparsify(copy.deepcopy(model)))
    assert torch.equal(again(x), dense)
    # the same seed gives the same model outputs; another seed other ones
    twin = topk_plugin.unsparsify(copy.deepcopy(model))
    topk_plugin.sparsify(twin, ["1", "3"], 0.25, op="random", seed=3, method=method)
    for m in layers.values():
        m.reset()
    assert torch.equal(twin(x), model(x))
    other = topk_plugin.sparsify(topk_plugin.unsparsify(twin), ["1", "3"], 0.25, op="random", seed=4)
    assert not torch.equal(other(x), model(x))


def test_sparsify_op_errors():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    with pytest.raises(ValueError, match="op='dropout' is not one of"):
        topk_plugin.sparsify(model, "1", 0.1, op="dropout")
    with pytest.raises(ValueError, match="ties= has no meaning for op='random'"):
        topk_plugin.sparsify(model, "1", 0.1, op="random", ties="threshold")
    assert topk_plugin.sparsified_layers(model) == {}
