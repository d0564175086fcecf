"""The pure-PyTorch selection: any device, the reference every other path must equal bit for bit.

One ``torch.kthvalue`` per row on integer keys (``rank_keys``) that order exactly
like the ranking, with every NaN at the top, so ties are exact and the result
does not depend on the backend's float comparisons. This is the path on GPUs,
under ``TOPK_PLUGIN_BACKEND=torch``, and wherever the C kernel is not built.
"""
from __future__ import annotations

import torch

from .layout import KEY_DTYPES, rows

__all__ = ["rank_keys", "row_mask", "topk_mask", "topk_keep"]

# The key of +inf under |x| ranking; every NaN's key lies above it.
_INF_KEY = {
    dtype: torch.tensor(float("inf"), dtype=dtype).view(int_dtype).item()
    for dtype, int_dtype in KEY_DTYPES.items()
}


def rank_keys(values: torch.Tensor, by_abs: bool) -> torch.Tensor:
    """Integers ordered exactly like the ranking (by ``|x|`` or by value), with every NaN as the maximum.

    An IEEE float's bit pattern, read as a signed int, is ordered like the float
    for non-negative values; flipping the magnitude bits of negative values
    makes the whole line monotone. Integer keys give exact ties and a total order
    that does not depend on the backend's float comparisons.
    """
    int_dtype = KEY_DTYPES[values.dtype]
    bits = torch.iinfo(int_dtype).bits
    magnitude = (1 << (bits - 1)) - 1  # all bits but the sign
    nan_key = torch.iinfo(int_dtype).max
    if by_abs:
        keys = values.abs().view(int_dtype)  # sign cleared; every NaN is above inf
        return keys.clamp_max(_INF_KEY[values.dtype] + 1)  # all NaN payloads tie
    canon = values + 0.0  # -0.0 + 0.0 == +0.0: the two zeros tie
    keys = canon.view(int_dtype)
    keys = keys ^ ((keys >> (bits - 1)) & magnitude)
    return keys.masked_fill(torch.isnan(values), nan_key)


def row_mask(view: torch.Tensor, dim: int, k: int, exact: bool, by_abs: bool, keeps_all: bool = False) -> torch.Tensor:
    """Bool mask of the Top-``k`` entries of each row of a :func:`~.layout.rows` view.

    ``exact``: K entries, lowest index first among ties; otherwise every entry ranking
    at least as high as the K-th (``ties="threshold"``). ``keeps_all``: K covers the row.
    """
    length = view.shape[dim]
    if keeps_all or view.numel() == 0:
        return torch.ones_like(view, dtype=torch.bool)
    with torch.no_grad():
        keys = rank_keys(view.detach(), by_abs)
        # K-th largest == (L - K + 1)-th smallest; kthvalue is a linear-time select.
        kth = torch.kthvalue(keys, length - k + 1, dim=dim, keepdim=True).values
        if not exact:
            return keys >= kth
        above = keys > kth
        missing = k - above.sum(dim=dim, keepdim=True)
        at = keys == kth
        return above | (at & (at.cumsum(dim=dim) <= missing))


def topk_mask(x: torch.Tensor, k: int, channel_dim: int, exact: bool, by_abs: bool, keeps_all: bool) -> torch.Tensor:
    """The Top-``k`` mask of ``x`` per (sample, channel), shaped and laid out like ``x``."""
    view, dim, unflatten = rows(x, channel_dim)
    return unflatten(row_mask(view, dim, k, exact, by_abs, keeps_all))


def topk_keep(x: torch.Tensor, k: int, channel_dim: int, exact: bool, by_abs: bool, invert: bool,
              keeps_all: bool) -> torch.Tensor:
    """``x`` where its (inverted) Top-``k`` mask holds, ``+0.0`` elsewhere; differentiable."""
    mask = topk_mask(x, k, channel_dim, exact, by_abs, keeps_all)
    return torch.where(~mask if invert else mask, x, 0.0)
