"""The compiled CPU kernel path against the pure-PyTorch path and the reference.

Every test that needs the kernel is skipped (not failed) when no C compiler is
available; ``test_backend_switch_forces_pytorch`` always runs.
"""
import platform

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings
from reference import reference_topk
from test_functional_properties import _assert_same, inputs, options

from topk_plugin import kernel
from topk_plugin.functional import spatial_topk, topk_mask

needs_kernel = pytest.mark.skipif(
    not kernel.dispatch.kernel_available(), reason=f"C kernel unavailable: {kernel.build.status()}"
)


def same_format(a, b):
    """Same memory format (strides of size-1 dims and of odd layouts may differ)."""
    formats = [torch.contiguous_format]
    formats += {4: [torch.channels_last], 5: [torch.channels_last_3d]}.get(a.ndim, [])
    return all(a.is_contiguous(memory_format=f) == b.is_contiguous(memory_format=f) for f in formats)


def both(fn):
    """``fn`` on the kernel (the native build, or the build a caller pinned) and on the
    PyTorch path (pinned, so it wins over a caller's pinned build)."""
    with kernel.dispatch.backend("kernel"):
        fast = fn()
    with kernel.dispatch.kernel_library("torch"):
        slow = fn()
    return fast, slow


@needs_kernel
@settings(max_examples=300)
@given(inputs(), options)
def test_kernel_equals_pytorch_path_bitwise(case, opts):
    x, k, channel_dim = case
    fast, slow = both(lambda: spatial_topk(x, k, channel_dim=channel_dim, **opts))
    assert fast.dtype == slow.dtype
    if x.ndim in (4, 5) and channel_dim == 1:  # the memory format follows the input
        fmt = torch.channels_last if x.ndim == 4 else torch.channels_last_3d
        assert fast.is_contiguous(memory_format=fmt) == x.is_contiguous(memory_format=fmt)
    assert torch.equal(fast.isnan(), slow.isnan())
    if opts["mode"] == "keep":  # same bits, including -0.0 and NaN payloads
        int_dtype = {2: torch.int16, 4: torch.int32, 8: torch.int64}[x.element_size()]
        assert torch.equal(fast.view(int_dtype), slow.view(int_dtype))
    else:  # the mask is bit-identical, the mean is computed by the same torch code
        assert torch.equal(fast.nan_to_num(), slow.nan_to_num())
    fm, sm = both(lambda: topk_mask(x, k, ties=opts["ties"], rank_by=opts["rank_by"], channel_dim=channel_dim))
    assert torch.equal(fm, sm)


@needs_kernel
@settings(max_examples=100)
@given(inputs(), options)
def test_kernel_matches_reference(case, opts):
    x, k, channel_dim = case
    with kernel.dispatch.backend("kernel"):
        out = spatial_topk(x, k, channel_dim=channel_dim, **opts)
    _assert_same(out, reference_topk(x, k, channel_dim=channel_dim, **opts), opts["mode"])


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape", [(3, 5, 40, 37), (2, 3, 300), (2, 4, 6, 7, 9)])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "tokens", "strided"])
@pytest.mark.parametrize("data", ["normal", "relu", "few_values", "heavy_tail"])
def test_larger_rows_every_layout(dtype, shape, layout, data):
    """Rows long enough for the sampling/interpolation steps, in every layout the kernel reads."""
    g = torch.Generator().manual_seed(hash((shape, layout, data)) % 2**31)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    if data == "relu":
        x = x.clamp_min(0)
    elif data == "few_values":
        x = torch.randint(-3, 4, shape, generator=g).double() * 0.5
    elif data == "heavy_tail":
        x = x * torch.exp(4 * torch.randn(shape, generator=g, dtype=torch.float64))
    x = x.to(dtype)
    channel_dim = 1
    if layout == "channels_last" and x.ndim in (4, 5):
        x = x.contiguous(memory_format=torch.channels_last if x.ndim == 4 else torch.channels_last_3d)
    elif layout == "tokens":
        x, channel_dim = x.movedim(1, -1).contiguous(), -1
    elif layout == "strided":
        x = x.transpose(-1, -2)  # neither rows nor channels contiguous: the kernel copies
    for k in (0.05, 0.1, 0.2, 0.5, 0.9, 1):
        for ties in ("exact", "threshold"):
            for rank_by in ("abs", "value"):
                for invert in (False, True):
                    kw = dict(ties=ties, rank_by=rank_by, invert=invert, channel_dim=channel_dim)
                    fast, slow = both(lambda k=k, kw=kw: spatial_topk(x, k, **kw))
                    int_dtype = {2: torch.int16, 4: torch.int32, 8: torch.int64}[x.element_size()]
                    assert torch.equal(fast.view(int_dtype), slow.view(int_dtype)), kw
                    assert layout == "strided" or same_format(fast, slow)


@needs_kernel
def test_exact_k_and_lowest_index_ties_on_long_rows():
    x = torch.zeros(2, 3, 1000)
    x[..., 500:] = 1.0  # 500 ones: K = 100 of them must be the first 100
    with kernel.dispatch.backend("kernel"):
        mask = topk_mask(x, 0.1)
    assert mask.sum(-1).eq(100).all()
    assert mask[..., 500:600].all() and not mask[..., 600:].any()
    x = torch.full((1, 1, 5000), float("nan"))
    x[..., ::2] = 3.0
    with kernel.dispatch.backend("kernel"):
        out = spatial_topk(x, 0.6)
    assert out.isnan().sum() == 2500 and out[..., ::2].ne(0).sum() == 500


@needs_kernel
def test_gradient_and_saved_tensors_are_a_bool_mask():
    x = torch.randn(4, 8, 20, 20, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with kernel.dispatch.backend("kernel"), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = spatial_topk(x, 0.1)
    assert saved and all(t.dtype == torch.bool for t in saved)
    out.sum().backward()
    with kernel.dispatch.backend("torch"):
        expected = topk_mask(x.detach(), 0.1).float()
    assert torch.equal(x.grad, expected)


def assert_kernel_equals_torch_path(x, k, **kw):
    int_dtype = {2: torch.int16, 4: torch.int32, 8: torch.int64}[x.element_size()]
    for fn in (spatial_topk, topk_mask):
        args = kw if fn is spatial_topk else {name: v for name, v in kw.items() if name != "invert"}
        fast, slow = both(lambda fn=fn, args=args: fn(x, k, **args))
        if fn is spatial_topk:
            fast, slow = fast.view(int_dtype), slow.view(int_dtype)
        assert torch.equal(fast, slow), (fn.__name__, k, kw)


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_rows_longer_than_a_count_chunk(dtype):
    """Counts accumulate in the key type (int16 for half precision) and are flushed every 16384
    keys: rows longer than two chunks, with many ties and with distinct values."""
    g = torch.Generator().manual_seed(1)
    length = 2 * 16384 + 77
    x = torch.randn(2, 2, length, generator=g, dtype=torch.float64)
    x[0, 0] = torch.randint(-4, 5, (length,), generator=g).double()  # ties everywhere
    x = x.to(dtype)
    for k in (1, 0.05, 0.5, 0.999):
        for ties in ("exact", "threshold"):
            for rank_by in ("abs", "value"):
                assert_kernel_equals_torch_path(x, k, ties=ties, rank_by=rank_by)


def _builds():
    """Every build the tests hold to the PyTorch path besides the native one: the portable
    (plain C) build, each vector width of the vector-extension code (a width wider than the
    hardware's still runs, split into several registers), and the build of each x86 ISA
    level this CPU can run, which must pick its width from the target by itself."""
    builds = {
        "portable": (dict(variant="portable"), 0),
        "vbytes16": (dict(defines=("-DTOPK_VBYTES=16",)), 16),
        "vbytes32": (dict(defines=("-DTOPK_VBYTES=32",)), 32),
        "vbytes64": (dict(defines=("-DTOPK_VBYTES=64",)), 64),
    }
    if platform.machine() in ("x86_64", "AMD64"):
        flags = kernel.cpu.cpu_flags()
        builds["x86-64"] = (dict(march="x86-64"), 0)  # SSE2 only: plain C
        if "sse4_1" in flags:
            builds["x86-64-v2"] = (dict(march="x86-64-v2"), 16)
        if "avx2" in flags:
            builds["x86-64-v3"] = (dict(march="x86-64-v3"), 32)
        if {"avx512f", "avx512bw"} <= flags:
            builds["x86-64-v4"] = (dict(march="x86-64-v4"), 64)
    return builds


BUILDS = _builds()


@pytest.fixture(scope="module", params=["native", *BUILDS])
def any_build(request):
    """The native build, then every build of :func:`_builds`, as a loaded library."""
    if request.param == "native":
        if not kernel.dispatch.kernel_available():
            pytest.skip(f"C kernel unavailable: {kernel.build.status()}")
        return kernel.build.library("native")
    kwargs, vector_bytes = BUILDS[request.param]
    build = kernel.build.build(**kwargs)
    if build.lib is None:
        pytest.skip(f"the {request.param} kernel does not build: {build.status}")
    if kwargs.get("march") and f"-march={kwargs['march']}" not in build.flags:
        pytest.skip(f"the compiler refused -march={kwargs['march']}: {build.status}")
    assert build.vector_bytes == vector_bytes, build.status
    return build.lib


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_band_gather_with_crowded_lanes(any_build, dtype, channels_last):
    """The last step gathers the few keys left in the bracket with one vector pass that keeps
    three per lane (lane = position mod 4 vector widths, 256 bytes at most) and falls back to a
    scalar pass when a lane holds more. Here every large key sits in the same lane at every
    width, so the fallback must run whenever the band holds four or more of them."""
    stride = 256 // torch.empty((), dtype=dtype).element_size()  # positions sharing a lane
    n_big = 30
    length = stride * (n_big + 3)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, length, generator=g, dtype=torch.float64) * 1e-3
    order = torch.randperm(n_big, generator=g)
    x[..., : n_big * stride : stride] = 1 + order.double() / 32  # distinct in every dtype
    x = x.to(dtype).unsqueeze(-1)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    big = x.squeeze(-1)[..., : n_big * stride : stride]
    with kernel.dispatch.kernel_library(any_build):
        for k in (3, 5, 12, 20, 29):
            for ties in ("exact", "threshold"):
                assert_kernel_equals_torch_path(x, k, ties=ties)
                assert_kernel_equals_torch_path(-x, k, ties=ties, rank_by="abs")
            kept = spatial_topk(x, k).squeeze(-1)
            assert torch.equal(kept[..., : n_big * stride : stride] != 0, big >= big.sort(-1, descending=True).values[..., k - 1 : k])


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_every_build_equals_torch_path(any_build, dtype, channels_last):
    """The portable build (plain C: no vector-extension gather, short rows one at a time),
    which compilers without GCC/Clang extensions get, and the builds of every vector width
    and ISA level give the same bits as the PyTorch path, on both sides of every row-length
    boundary (short lanes <= 200, rank counting <= 128 or 64, long rows)."""
    for length in (1, 7, 49, 64, 65, 128, 129, 196, 200, 201, 784, 3136):
        g = torch.Generator().manual_seed(length)
        x = torch.randn(2, 5, length, generator=g, dtype=torch.float64)
        x[0, :2] = torch.randint(-2, 3, (2, length), generator=g).double()  # ties
        x[1, 0] = x[1, 0].clamp_min(0)  # ReLU zeros
        x = x.to(dtype).unsqueeze(-1)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with kernel.dispatch.kernel_library(any_build):
            for k in (1, 0.1, 0.5, 0.95):
                for ties in ("exact", "threshold"):
                    for rank_by in ("abs", "value"):
                        assert_kernel_equals_torch_path(x, k, ties=ties, rank_by=rank_by)
                        assert_kernel_equals_torch_path(x, k, ties=ties, rank_by=rank_by, invert=True)


class Wrap(torch.nn.Module):
    def forward(self, t):
        return spatial_topk(t, 0.2) * 2 + spatial_topk(t, 0.3, ties="threshold", rank_by="value", invert=True)


@needs_kernel
def test_custom_ops_under_compile_and_export():
    x = torch.randn(2, 8, 12, 12)

    f = Wrap().forward

    with kernel.dispatch.backend("kernel"):
        torch._dynamo.reset()
        assert torch.equal(torch.compile(f)(x), f(x))
        program = torch.export.export(Wrap(), (x,))
        assert any("topk_plugin" in str(node.target) for node in program.graph.nodes)
        assert torch.equal(program.module()(x), f(x))
    torch.library.opcheck(torch.ops.topk_plugin.topk_mask, (x, 28, 1, True, True, False))
    torch.library.opcheck(torch.ops.topk_plugin.topk_keep, (x, 28, 1, True, True, False))
    torch.library.opcheck(torch.ops.topk_plugin.topk_keep, (x.contiguous(memory_format=torch.channels_last), 5, 1, False, False, True))


def test_backend_switch_forces_pytorch(monkeypatch):
    x = torch.randn(2, 3, 8, 8)
    with kernel.dispatch.backend("torch"):
        assert not kernel.dispatch.use_kernel(x)
        expected = spatial_topk(x, 0.1)
    with pytest.raises(ValueError):
        kernel.dispatch.set_backend("fast")
    monkeypatch.setattr(kernel.build, "library", lambda variant="native": None)
    assert not kernel.dispatch.use_kernel(x)  # auto: falls back cleanly when the kernel is missing
    assert torch.equal(spatial_topk(x, 0.1), expected)
    with kernel.dispatch.backend("kernel"), pytest.raises(RuntimeError, match="unavailable"):
        spatial_topk(x, 0.1)


@needs_kernel
@settings(max_examples=200, deadline=None)
@given(
    length=st.one_of(st.integers(1, 210), st.sampled_from([49, 63, 64, 65, 127, 128, 129, 196, 200, 201])),
    channels=st.integers(1, 20),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16]),
    channels_last=st.booleans(),
    pool=st.sampled_from(["ties", "normal", "relu"]),
    seed=st.integers(0, 2**31 - 1),
    k_frac=st.floats(0.0, 1.0),
    opts=options,
)
def test_short_rows_direct_rank_path(length, channels, dtype, channels_last, pool, seed, k_frac, opts):
    """Short rows take the kernel's short paths: W rows at a time in vector lanes for rows of at
    most 200 positions (float16/bfloat16/float32), ranking by counting for float64 rows of at
    most 64; longer rows the bracketing one. Both sides of the boundaries, with ties and NaN."""
    g = torch.Generator().manual_seed(seed)
    if pool == "ties":
        values = torch.tensor([0.0, -0.0, 1.0, -1.0, 2.0, 0.5, float("nan"), float("inf"), float("-inf")])
        x = values[torch.randint(len(values), (2, channels, length), generator=g)]
    else:
        x = torch.randn(2, channels, length, generator=g, dtype=torch.float64)
        x = x.clamp_min(0) if pool == "relu" else x
    x = x.to(dtype).unsqueeze(-1)  # (N, C, L, 1): 4-d so channels_last is the (N, L, C) kernel layout
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    k = max(1, min(length, round(k_frac * length)))
    fast, slow = both(lambda: spatial_topk(x, k, **opts))
    if opts["mode"] == "keep":
        int_dtype = {2: torch.int16, 4: torch.int32, 8: torch.int64}[x.element_size()]
        assert torch.equal(fast.view(int_dtype), slow.view(int_dtype))
    else:
        assert torch.equal(fast.isnan(), slow.isnan())
        assert torch.equal(fast.nan_to_num(), slow.nan_to_num())
    fm, sm = both(lambda: topk_mask(x, k, ties=opts["ties"], rank_by=opts["rank_by"]))
    assert torch.equal(fm, sm)
