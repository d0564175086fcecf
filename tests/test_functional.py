"""spatial_topk: documented edge cases, gradients, errors, devices."""
import pytest
import torch
from reference import reference_topk

from topk_plugin.functional import random_k, resolve_k, spatial_topk, topk_mask

NAN, INF = float("nan"), float("inf")


def test_keeps_largest_magnitude_with_sign():
    x = torch.tensor([[[1.0, -5.0, 3.0, -2.0]]])
    assert spatial_topk(x, 2).tolist() == [[[0.0, -5.0, 3.0, 0.0]]]
    assert spatial_topk(x, 2, rank_by="value").tolist() == [[[1.0, 0.0, 3.0, 0.0]]]


def test_exact_ties_prefer_lowest_index_and_threshold_keeps_all():
    x = torch.tensor([[[3.0, 1.0, 1.0, -1.0, 0.5]]])
    assert spatial_topk(x, 2).tolist() == [[[3.0, 1.0, 0.0, 0.0, 0.0]]]
    assert spatial_topk(x, 2, ties="threshold").tolist() == [[[3.0, 1.0, 1.0, -1.0, 0.0]]]


def test_fraction_and_count_rules():
    assert resolve_k(0.1, 55 * 55) == 302  # floor(302.5)
    assert resolve_k(0.001, 10) == 1  # at least one
    assert resolve_k(0.29, 100) == 29  # the decimal as written, not 28.999...
    assert resolve_k(1.0, 10) == 10 and resolve_k(1, 10) == 1
    assert resolve_k(50, 10) == 10  # counts cap at the positions


def test_full_k_is_identity():
    x = torch.randn(2, 3, 4, 4)
    assert spatial_topk(x, 1.0) is x
    assert spatial_topk(x, 16) is x
    assert torch.equal(spatial_topk(x, 1.0, invert=True), torch.zeros_like(x))


def test_mean_replacement():
    x = torch.tensor([[[4.0, -2.0, 1.0, 0.0]]])
    assert spatial_topk(x, 2, mode="mean").tolist() == [[[1.0, 1.0, 0.0, 0.0]]]
    assert spatial_topk(x, 2, mode="mean", rank_by="value").tolist() == [[[2.5, 0.0, 2.5, 0.0]]]


def test_nan_policy_nan_ranks_first_and_propagates():
    x = torch.tensor([[[1.0, NAN, -INF, 5.0, NAN]]])
    out = spatial_topk(x, 2)
    assert out.isnan().tolist() == [[[False, True, False, False, True]]]
    assert out.nan_to_num()[0, 0].tolist() == [0.0, 0.0, 0.0, 0.0, 0.0]
    out = spatial_topk(x, 3)  # then |−inf| outranks 5
    assert out[0, 0, 2].item() == -INF and out[0, 0, 3].item() == 0.0
    out = spatial_topk(x, 3, rank_by="value")  # by value, -inf ranks last
    assert out[0, 0, 3].item() == 5.0 and out[0, 0, 2].item() == 0.0
    assert spatial_topk(x, 2, mode="mean").isnan()[0, 0, 1]


def test_token_layout_equals_transposed_channel_first():
    x = torch.randn(2, 197, 12)  # (n, tokens, c)
    expected = spatial_topk(x.transpose(1, 2), 0.1).transpose(1, 2)
    assert torch.equal(spatial_topk(x, 0.1, channel_dim=-1), expected)


def test_channels_last_output_keeps_format():
    x = torch.randn(2, 8, 5, 5).contiguous(memory_format=torch.channels_last)
    out = spatial_topk(x, 0.2)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, spatial_topk(x.contiguous(), 0.2))


def test_non_contiguous_input():
    x = torch.randn(2, 6, 8, 10)[:, ::2, :, 1::2]
    assert torch.equal(spatial_topk(x, 0.3), reference_topk(x, 0.3))


# --- gradients ----------------------------------------------------------------------


def test_gradient_is_the_mask():
    x = torch.randn(2, 3, 5, 5, requires_grad=True)
    spatial_topk(x, 0.2).sum().backward()
    assert torch.equal(x.grad, topk_mask(x, 0.2).to(x.dtype))


@pytest.mark.parametrize("mode", ["keep", "mean"])
@pytest.mark.parametrize("invert", [False, True])
def test_gradcheck(mode, invert):
    # distinct magnitudes, far apart: finite differences never change the selection
    values = torch.randperm(2 * 3 * 16, generator=torch.Generator().manual_seed(0)).double() + 1
    signs = torch.where(torch.rand(values.shape, generator=torch.Generator().manual_seed(1)) > 0.5, 1.0, -1.0)
    x = (values * signs).reshape(2, 3, 4, 4).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: spatial_topk(t, 0.25, mode=mode, invert=invert), (x,))
    assert torch.autograd.gradgradcheck(lambda t: spatial_topk(t, 0.25, mode=mode, invert=invert), (x,))


def test_backward_saves_only_a_bool_mask():
    saved = []

    def pack(t):
        saved.append((t.dtype, t.data_ptr()))
        return t

    x = torch.randn(4, 8, 16, 16, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = spatial_topk(x, 0.1)
    assert saved and all(dtype == torch.bool for dtype, _ in saved), saved
    y.sum().backward()


# --- devices ------------------------------------------------------------------------


def test_meta_device_shapes():
    x = torch.empty(2, 4, 6, 6, device="meta")
    assert spatial_topk(x, 0.1).shape == x.shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cuda_matches_cpu(dtype):
    x = torch.randn(4, 16, 14, 14).to(dtype)
    assert torch.equal(spatial_topk(x.cuda(), 0.1).cpu(), spatial_topk(x, 0.1))


# --- errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "k, error, words",
    [
        (0, ValueError, "int k must be >= 1"),
        (-3, ValueError, "int k must be >= 1"),
        (0.0, ValueError, "(0, 1]"),
        (-0.1, ValueError, "(0, 1]"),
        (1.5, ValueError, "non-integer counts"),
        (2.0, ValueError, "pass the int 2"),
        (float("nan"), ValueError, "(0, 1]"),
        ("5", TypeError, "got '5'"),
        (True, TypeError, "bool"),
        (None, TypeError, "NoneType"),
    ],
)
def test_bad_k(k, error, words):
    with pytest.raises(error) as info:
        spatial_topk(torch.randn(1, 2, 3, 3), k)
    assert words in str(info.value)


@pytest.mark.parametrize(
    "x, words",
    [
        (torch.randn(8, 10), "2-D"),
        (torch.randn(2, 3, 2, 2, 2, 2), "6-D"),
        (torch.ones(2, 3, 4, 4, dtype=torch.int64), "floating"),
    ],
)
def test_bad_tensor(x, words):
    with pytest.raises((ValueError, TypeError)) as info:
        spatial_topk(x, 0.1)
    assert words in str(info.value)


@pytest.mark.parametrize("kwargs", [dict(ties="all"), dict(mode="max"), dict(rank_by="magnitude"), dict(channel_dim=0)])
def test_bad_options(kwargs):
    with pytest.raises(ValueError) as info:
        spatial_topk(torch.randn(1, 2, 3, 3), 0.5, **kwargs)
    assert str(next(iter(kwargs))) in str(info.value)


@pytest.mark.parametrize("selection", ["torch", "auto"])
@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (2, 0, 4, 4), (0, 0, 5), (0, 6, 3)])
@pytest.mark.parametrize("opts", [{}, dict(mode="mean"), dict(invert=True), dict(fill="image-mean"),
                                  dict(ties="threshold", rank_by="value")])
def test_empty_batch_or_no_channels_gives_an_empty_result_on_every_path(selection, shape, opts):
    """The PyTorch path (the only one on GPUs) agrees with the CPU kernel on empty inputs."""
    from topk_plugin import kernel

    channel_dim = -1 if len(shape) == 3 and shape[-1] != 5 else 1
    x = torch.zeros(shape)
    with kernel.dispatch.backend(selection):
        y = spatial_topk(x, 0.5, channel_dim=channel_dim, **opts)
        mask = topk_mask(x, 0.5, channel_dim=channel_dim)
        rand = random_k(x, 0.5, channel_dim=channel_dim)
    assert y.shape == x.shape and mask.shape == x.shape and rand.shape == x.shape
    assert y.numel() == 0 and mask.dtype == torch.bool
