"""Sparsified models under torch.compile, torch.export and FX symbolic tracing."""
import pytest
import torch
import torch.fx
from torch import nn

from topk_plugin import sparsify


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
    for (name, a), b in zip(eager.named_parameters(), compiled.parameters()):
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
