"""Property tests: spatial_topk equals the brute-force reference on random inputs."""
import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import given
from reference import reference_k, reference_topk

from topk_plugin.functional import MODES, RANK_BY, TIES, resolve_k, spatial_topk, topk_mask

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


@st.composite
def inputs(draw):
    ndim = draw(st.integers(3, 5))
    n = draw(st.integers(1, 3))
    c = draw(st.integers(1, 4))
    spatial = draw(st.lists(st.integers(1, 6), min_size=ndim - 2, max_size=ndim - 2))
    channel_dim = draw(st.sampled_from([1, -1]))
    shape = [n, c, *spatial] if channel_dim == 1 else [n, *spatial, c]
    dtype = draw(st.sampled_from(DTYPES))
    # A small value pool forces ties, signed zeros, NaN and infinities.
    pool = st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, float("nan"), float("inf"), float("-inf")])
    special = draw(st.booleans())
    numel = int(np.prod(shape))
    if special:
        values = draw(st.lists(pool, min_size=numel, max_size=numel))
        x = torch.tensor(values, dtype=torch.float64).reshape(shape)
    else:
        seed = draw(st.integers(0, 2**31 - 1))
        x = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        if draw(st.booleans()):  # post-ReLU-like: many exact zeros
            x = x.clamp_min(0)
    x = x.to(dtype)
    fmt = draw(st.sampled_from(["contiguous", "channels_last"]))
    if fmt == "channels_last" and ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    elif fmt == "channels_last" and ndim == 5:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    positions = int(np.prod(spatial))
    k = draw(st.one_of(st.integers(1, positions + 3), st.floats(0.001, 1.0), st.sampled_from([0.05, 0.1, 0.2, 0.29, 1.0])))
    return x, k, channel_dim


options = st.fixed_dictionaries(
    {
        "ties": st.sampled_from(TIES),
        "mode": st.sampled_from(MODES),
        "rank_by": st.sampled_from(RANK_BY),
        "invert": st.booleans(),
    }
)


def _assert_same(actual, expected, mode):
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    assert torch.equal(actual.isnan(), expected.isnan())
    if mode == "keep":  # selected values are copied: bit-exact
        assert torch.equal(actual.nan_to_num(), expected.nan_to_num())
    else:  # a mean in the input dtype, accumulated in float32 vs float64
        tol = {torch.float16: 2e-3, torch.bfloat16: 1e-2, torch.float32: 1e-6, torch.float64: 1e-12}[actual.dtype]
        torch.testing.assert_close(actual, expected, rtol=tol, atol=tol, equal_nan=True)


@given(inputs(), options)
def test_matches_reference(case, opts):
    x, k, channel_dim = case
    out = spatial_topk(x, k, channel_dim=channel_dim, **opts)
    _assert_same(out, reference_topk(x, k, channel_dim=channel_dim, **opts), opts["mode"])
    if x.ndim in (4, 5) and channel_dim == 1:
        fmt = torch.channels_last if x.ndim == 4 else torch.channels_last_3d
        assert out.is_contiguous(memory_format=fmt) == x.is_contiguous(memory_format=fmt) or x.numel() == 0


@given(inputs(), st.sampled_from(RANK_BY))
def test_exact_ties_keep_exactly_k(case, rank_by):
    x, k, channel_dim = case
    mask = topk_mask(x, k, rank_by=rank_by, channel_dim=channel_dim)
    moved = mask.movedim(channel_dim, 1)
    per_row = moved.reshape(moved.shape[0], moved.shape[1], -1).sum(-1)
    positions = moved[0, 0].numel()
    assert (per_row == reference_k(k, positions)).all()


@given(inputs(), st.sampled_from(RANK_BY))
def test_threshold_ties_superset_of_exact(case, rank_by):
    x, k, channel_dim = case
    exact = topk_mask(x, k, rank_by=rank_by, channel_dim=channel_dim)
    threshold = topk_mask(x, k, ties="threshold", rank_by=rank_by, channel_dim=channel_dim)
    assert not (exact & ~threshold).any()


@given(inputs(), options.map(lambda o: {**o, "mode": "keep"}))
def test_invert_partitions_the_input(case, opts):
    x, k, channel_dim = case
    kept = spatial_topk(x, k, channel_dim=channel_dim, ties=opts["ties"], rank_by=opts["rank_by"])
    rest = spatial_topk(x, k, channel_dim=channel_dim, ties=opts["ties"], rank_by=opts["rank_by"], invert=True)
    mask = topk_mask(x, k, channel_dim=channel_dim, ties=opts["ties"], rank_by=opts["rank_by"])
    assert torch.equal(torch.where(mask, kept, rest).nan_to_num(), x.nan_to_num())


@pytest.mark.parametrize("positions", [1, 7, 49, 100, 3025, 12544])
@pytest.mark.parametrize("f", [0.01, 0.05, 0.1, 0.2, 0.29, 0.3, 0.5, 0.7, 1.0])
def test_fraction_rule(positions, f):
    assert resolve_k(f, positions) == reference_k(f, positions)
