"""An activation as rows of positions: the views every selection path reads.

A row is one (sample, channel) pair's positions (spatial places or tokens). The
paths read the rows in place when the memory allows: ``(n, c, L)`` for
channel-first contiguous tensors, ``(n, L, c)`` when the channels are innermost in
memory (channels_last, token tensors).
"""
from __future__ import annotations

import torch

__all__ = ["positions", "rows", "in_place_layout", "KEY_DTYPES"]

# Same-width integer views whose order matches the float order (see torch_path.rank_keys):
# also the dtypes every path accepts.
KEY_DTYPES = {
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
    torch.float32: torch.int32,
    torch.float64: torch.int64,
}


def positions(x: torch.Tensor, channel_dim: int) -> int:
    """Positions per (sample, channel): the product of the non-batch, non-channel sizes
    (also of an empty batch; a plain loop, so ``torch.compile(fullgraph=True)`` traces it)."""
    c_dim = channel_dim % x.ndim
    count = 1
    for i in range(1, x.ndim):
        if i != c_dim:
            count = count * x.shape[i]
    return count


def rows(x: torch.Tensor, channel_dim: int):
    """A 3-D view of ``x`` with positions on one axis, plus the inverse map.

    Returns ``(rows, dim, unflatten)``: ``rows`` is ``(n, L, c)`` (``dim=1``) when
    the channels are the innermost axis in memory (channels_last, token tensors)
    and ``(n, c, L)`` (``dim=2``) otherwise, so no copy is made for the usual
    layouts; ``unflatten`` maps a tensor shaped like ``rows`` back to ``x``'s
    shape with ``x``'s strides. Sizes are explicit (no ``-1``), so empty tensors work.
    """
    c_dim = channel_dim % x.ndim
    n, c, length = x.shape[0], x.shape[c_dim], positions(x, channel_dim)
    last = x.movedim(c_dim, -1)
    if last.is_contiguous():
        view = last.reshape(n, length, c)
        return view, 1, lambda t: t.reshape(last.shape).movedim(-1, c_dim)
    first = x.movedim(c_dim, 1)
    view = first.reshape(n, c, length)
    return view, 2, lambda t: t.reshape(first.shape).movedim(1, c_dim)


def in_place_layout(x: torch.Tensor, channel_dim: int):
    """``("rows", R, L, C)`` / ``("cl", N, L, C)`` when the C kernel can read ``x`` in place, else None."""
    c_dim = channel_dim % x.ndim
    n, c = x.shape[0], x.shape[c_dim]
    length = positions(x, channel_dim)
    if x.movedim(c_dim, 1).is_contiguous():
        return "rows", n * c, length, c
    if x.movedim(c_dim, -1).is_contiguous():
        return "cl", n, length, c
    return None
