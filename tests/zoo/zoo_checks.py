"""Checks shared by the zoo tests: where Top-K acts inside a built variant."""
from __future__ import annotations

import torch
from helpers import clone_value, record_calls
from reference import reference_k, reference_topk
from torch import nn

from topk_plugin import TopK, sparsified_layers


def assert_placement(model: nn.Module, dense: nn.Module, layers, k, x, *, mode="keep", channel_dim=1) -> None:
    """Top-K acts exactly at ``layers`` of ``model``; every other leaf is dense.

    ``dense`` is the base model with the same weights. Each call of a selected
    layer must return the reference Top-K of what the dense layer computes
    from the same input, with at most K nonzeros per channel; every other leaf
    module must return exactly what its dense twin returns.
    """
    assert set(sparsified_layers(model)) == set(layers)
    model.eval()
    dense.eval()
    dense_modules = dict(dense.named_modules())
    leaves = {n for n, m in dense.named_modules() if n and not list(m.children())}
    watched = sorted(leaves | set(layers))
    calls, handles = record_calls(model, watched)
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    with torch.no_grad():
        for name in watched:
            assert calls[name], f"{name} never ran"
            for args, output in calls[name]:
                recomputed = dense_modules[name](*(clone_value(a) for a in args))
                if name not in layers:
                    assert torch.equal(output, recomputed), f"{name} is not dense"
                    continue
                expected = reference_topk(recomputed, k, mode=mode, channel_dim=channel_dim)
                if mode == "keep":
                    assert torch.equal(output, expected), f"{name}: not the Top-K of the dense output"
                else:  # the mean is summed in float32 here, in float64 by the reference
                    assert torch.equal(output != 0, expected != 0), f"{name}: wrong positions kept"
                    torch.testing.assert_close(output, expected, msg=f"{name}: wrong means")
                rows = recomputed.movedim(channel_dim, 1).flatten(2)
                kk = reference_k(k, rows.shape[2])
                nnz = (output.movedim(channel_dim, 1).flatten(2) != 0).sum(2)
                assert int(nnz.max()) <= kk, f"{name}: more than K={kk} nonzeros in a channel"
                if mode == "keep":
                    assert torch.equal(nnz, (rows != 0).sum(2).clamp_max(kk)), name


def topk_count(model: nn.Module) -> int:
    return sum(isinstance(m, TopK) for m in model.modules())
