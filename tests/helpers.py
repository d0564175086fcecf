"""Checks shared by the surgery tests: what Top-K did inside a sparsified model."""
from __future__ import annotations

import copy

import torch
from reference import reference_k, reference_topk
from torch import nn

import topk_plugin


def clone_value(value):
    return value.detach().clone() if isinstance(value, torch.Tensor) else value


def record_calls(model: nn.Module, names) -> tuple[dict, list]:
    """Forward hooks recording (inputs, output) of each call of the named modules.

    The hooks are registered after any Top-K hook, so they see what the rest of
    the network sees; values are cloned before in-place ops can change them.
    """
    calls = {name: [] for name in names}
    pending = {}
    handles = []
    modules = dict(model.named_modules())
    for name in names:
        def pre(_m, args, name=name):
            pending[name] = tuple(clone_value(a) for a in args)

        def post(_m, _args, output, name=name):
            calls[name].append((pending.pop(name), clone_value(output)))

        handles.append(modules[name].register_forward_pre_hook(pre))
        handles.append(modules[name].register_forward_hook(post))
    return calls, handles


def check_sparsified(model: nn.Module, layers, k, x: torch.Tensor, method: str) -> None:
    """Sparsify ``model`` and check every selected and every leaf module.

    * A selected layer's output is the reference Top-K of what the dense layer
      computes from the same input, with min(K, nonzeros) nonzeros per channel.
    * Every other leaf computes exactly what the dense module computes.
    * state_dict keys and values are unchanged; unsparsify restores the outputs
      bit for bit and leaves no trace.
    """
    model.eval()
    dense = copy.deepcopy(model)
    with torch.no_grad():
        y_dense = model(x)
    keys = list(model.state_dict())
    topk_plugin.sparsify(model, layers, k, method=method)
    selected = set(topk_plugin.sparsified_layers(model))
    assert selected, "nothing was sparsified"
    assert list(model.state_dict()) == keys
    dense_modules = dict(dense.named_modules())
    leaves = {n for n, m in dense.named_modules() if n and not list(m.children())}
    calls, handles = record_calls(model, sorted(leaves | selected))
    with torch.no_grad():
        y_sparse = model(x)
    for h in handles:
        h.remove()
    assert not torch.equal(y_sparse, y_dense)
    with torch.no_grad():
        for name, layer_calls in calls.items():
            assert layer_calls or name not in selected, f"{name} was never called"
            for args, output in layer_calls:
                recomputed = dense_modules[name](*(clone_value(a) for a in args))
                if name not in selected:
                    assert torch.equal(output, recomputed), f"{name} changed although not selected"
                    continue
                assert torch.equal(output, reference_topk(recomputed, k)), name
                rows = recomputed.flatten(2)
                kk = reference_k(k, rows.shape[2])
                expected_nnz = (rows != 0).sum(2).clamp_max(kk)
                assert torch.equal((output.flatten(2) != 0).sum(2), expected_nnz), name
    topk_plugin.unsparsify(model)
    assert not topk_plugin.sparsified_layers(model)
    assert not any(isinstance(m, topk_plugin.TopK) for m in model.modules())
    assert [type(m) for m in model.modules()] == [type(m) for m in dense.modules()]
    with torch.no_grad():
        assert torch.equal(model(x), y_dense)
