"""Sparsified models under torch.compile, torch.export and FX symbolic tracing."""
import pytest
import torch
import torch.fx
from hypothesis import given
from hypothesis import strategies as st
from reference import reference_k
from torch import nn

from topk_plugin import create_model, kernel, sparsify
from topk_plugin.functional import resolve_k


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    )


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        return self.conv(x) * 2


X = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("method", ["module", "hook"])
def test_torch_compile_eval_and_train(method):
    torch._dynamo.reset()
    eager = sparsify(small_net(), ["0", "4"], 0.1, method=method)
    compiled = torch.compile(sparsify(small_net(), ["0", "4"], 0.1, method=method))
    with torch.no_grad():
        eager.eval(), compiled.eval()
        torch.testing.assert_close(compiled(X), eager(X))
    eager.train(), compiled.train()
    eager(X).square().sum().backward()
    compiled(X).square().sum().backward()
    for (name, a), b in zip(eager.named_parameters(), compiled.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, msg=name)


@pytest.mark.parametrize("method", ["module", "hook"])
def test_torch_export(method):
    model = sparsify(small_net(), ["0", "4"], 0.1, method=method).eval()
    program = torch.export.export(model, (X,))
    other = torch.randn(2, 3, 12, 12)
    assert torch.equal(program.module()(other), model(other))


def test_fx_symbolic_trace_keeps_topk():
    dense = small_net().eval()
    model = sparsify(small_net(), ["0", "4"], 0.1).eval()
    traced = torch.fx.symbolic_trace(model)  # torch.nn leaves stay leaves, Top-K inside
    assert torch.equal(traced(X), model(X)) and not torch.equal(traced(X), dense(X))
    custom = sparsify(nn.Sequential(Block(), nn.ReLU()), "0", 0.1).eval()  # traced through
    traced = torch.fx.symbolic_trace(custom)
    assert sum("spatial_topk" in str(node.target) for node in traced.graph.nodes) == 1
    assert torch.equal(traced(X), custom(X))


# --- several activation sizes, dynamic shapes, fullgraph (issue 25, item 1) -------------------


def two_resolution_net():
    """Top-K at 12x12 and 6x6 in one forward: the sizes Dynamo turns symbolic."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    )


@given(st.one_of(st.integers(1, 10_000).map(lambda n: n / 10_000), st.floats(1e-6, 1.0)),
       st.integers(1, 10**7))
def test_resolve_k_is_the_decimal_rule(k, positions):
    assert resolve_k(k, positions) == reference_k(k, positions)


@pytest.mark.parametrize("selection", ["torch", "kernel"])
@pytest.mark.parametrize("fullgraph", [False, True])
@pytest.mark.parametrize("dynamic", [None, True])
def test_compile_several_resolutions(selection, fullgraph, dynamic):
    if selection == "kernel" and not kernel.dispatch.kernel_available():
        pytest.skip("no C kernel on this machine")
    torch._dynamo.reset()
    model = sparsify(two_resolution_net(), ["1", "3"], 0.1).eval()
    with kernel.dispatch.backend(selection):
        compiled = torch.compile(model, backend="aot_eager", fullgraph=fullgraph, dynamic=dynamic)
        with torch.no_grad():
            for size in (12, 16, 20):  # a second size makes automatic dynamic shapes kick in
                x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(size))
                torch.testing.assert_close(compiled(x), model(x), rtol=0, atol=0)


def test_compile_with_gradients_at_two_sizes():
    torch._dynamo.reset()
    eager = sparsify(two_resolution_net(), ["1", "3"], 0.2)
    compiled = torch.compile(sparsify(two_resolution_net(), ["1", "3"], 0.2), backend="aot_eager")
    for size in (12, 18):
        x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(size))
        for m in (eager, compiled):
            m.zero_grad()
        eager(x).square().sum().backward()
        compiled(x).square().sum().backward()
        for (name, a), b in zip(eager.named_parameters(), compiled.parameters(), strict=True):
            torch.testing.assert_close(b.grad, a.grad, msg=name)


@pytest.mark.parametrize("method", ["module", "hook"])
def test_export_dynamic_height_and_width(method):
    model = sparsify(two_resolution_net(), ["1", "3"], 0.1, method=method).eval()
    h, w = torch.export.Dim("h", min=4, max=64), torch.export.Dim("w", min=4, max=64)
    program = torch.export.export(model, (torch.randn(2, 3, 12, 12),), dynamic_shapes=({2: h, 3: w},))
    for shape in ((2, 3, 12, 12), (2, 3, 9, 17), (2, 3, 32, 8)):
        x = torch.randn(shape, generator=torch.Generator().manual_seed(sum(shape)))
        assert torch.equal(program.module()(x), model(x)), shape


def test_compile_registry_model_at_two_sizes():
    torch._dynamo.reset()
    model = create_model("tv:squeezenet1_1_topk10").eval()
    compiled = torch.compile(model, backend="aot_eager")
    with torch.no_grad():
        for size in (64, 80):
            x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(size))
            torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("selection", ["torch", "kernel"])
def test_inductor_several_resolutions(selection):
    """The default backend (C++ code generation: minutes on 2 cores, so not in CI)."""
    if selection == "kernel" and not kernel.dispatch.kernel_available():
        pytest.skip("no C kernel on this machine")
    torch._dynamo.reset()
    model = sparsify(two_resolution_net(), ["1", "3"], 0.1).eval()
    with kernel.dispatch.backend(selection):
        compiled = torch.compile(model, fullgraph=True)
        with torch.no_grad():
            for size in (12, 16, 20):
                x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(size))
                torch.testing.assert_close(compiled(x), model(x))


# --- the per-image channel-statistics control (op="stats-norm") ------------------------------


def stats_norm_net(method: str, net=small_net, strength: float = 0.5):
    """``net`` with op='stats-norm' after its two ReLUs, calibrated on fixed images."""
    from topk_plugin import calibrate

    model = sparsify(net(), ["1", "4"] if net is small_net else ["1", "3"], op="stats-norm", strength=strength,
                     method=method)
    calibrate(model, torch.randn(8, 3, 12, 12, generator=torch.Generator().manual_seed(5)))
    return model


@pytest.mark.parametrize("method", ["module", "hook"])
def test_stats_norm_compile_eval_and_train(method):
    torch._dynamo.reset()
    eager = stats_norm_net(method)
    compiled = torch.compile(stats_norm_net(method))
    with torch.no_grad():
        eager.eval(), compiled.eval()
        torch.testing.assert_close(compiled(X), eager(X))
    eager.train(), compiled.train()
    eager(X).square().sum().backward()
    compiled(X).square().sum().backward()
    for (name, a), b in zip(eager.named_parameters(), compiled.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, msg=name)


@pytest.mark.parametrize("fullgraph", [False, True])
@pytest.mark.parametrize("dynamic", [None, True])
def test_stats_norm_compile_several_resolutions(fullgraph, dynamic):
    torch._dynamo.reset()
    model = stats_norm_net("module", two_resolution_net, strength=0.35).eval()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=fullgraph, dynamic=dynamic)
    with torch.no_grad():
        for size in (12, 16, 20):
            x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(size))
            torch.testing.assert_close(compiled(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("method", ["module", "hook"])
def test_stats_norm_export_dynamic_height_and_width(method):
    model = stats_norm_net(method, two_resolution_net).eval()
    program = torch.export.export(model, (torch.randn(2, 3, 12, 12),),
                                  dynamic_shapes=({2: torch.export.Dim("h", min=4, max=64),
                                                   3: torch.export.Dim("w", min=4, max=64)},))
    for shape in ((2, 3, 12, 12), (2, 3, 9, 17), (2, 3, 32, 8)):
        x = torch.randn(shape, generator=torch.Generator().manual_seed(sum(shape)))
        assert torch.equal(program.module()(x), model(x)), shape


def test_stats_norm_fx_symbolic_trace():
    from topk_plugin import calibrate

    model = stats_norm_net("module").eval()
    traced = torch.fx.symbolic_trace(model)  # torch.nn leaves stay leaves, the op inside
    assert torch.equal(traced(X), model(X)) and not torch.equal(traced(X), small_net().eval()(X))
    custom = sparsify(nn.Sequential(Block(), nn.ReLU()), "0", op="stats-norm", strength=0.5).eval()  # traced through
    calibrate(custom, X)
    traced = torch.fx.symbolic_trace(custom)
    assert sum("channel_stats_norm" in str(node.target) for node in traced.graph.nodes) == 1
    assert torch.equal(traced(X), custom(X))
