"""Running one loaded build of the C kernel on a tensor (through ctypes, on the tensor's memory).

The kernel reads ``(R, L)`` rows or channels-last ``(N, L, C)`` blocks in place and
writes either the selected values (others ``+0.0``) or a bool mask into an output
laid out like ``torch.empty_like(x)``; other layouts are made contiguous first.
"""
from __future__ import annotations

import torch

from .layout import KEY_DTYPES, in_place_layout

__all__ = ["run", "SERIAL_BELOW"]

SERIAL_BELOW = 1 << 15  # elements: below this the OpenMP fork costs more than it saves
_SUFFIX = {torch.float16: "i16", torch.bfloat16: "i16", torch.float32: "i32", torch.float64: "i64"}
_CONSTS = {  # (the key of +inf, the largest key: every NaN's) per dtype
    dtype: (torch.tensor(float("inf"), dtype=dtype).view(int_dtype).item(), torch.iinfo(int_dtype).max)
    for dtype, int_dtype in KEY_DTYPES.items()
}


def run(lib, x: torch.Tensor, k: int, channel_dim: int, exact: bool, by_abs: bool, invert: bool,
        want_out: bool) -> torch.Tensor:
    """Fill ``empty_like(x)`` (the selected values if ``want_out``, else the bool mask) with ``lib``.

    ``k`` is the resolved count (``1 <= k``; ``k >= L`` selects everything)."""
    result = torch.empty_like(x) if want_out else torch.empty_like(x, dtype=torch.bool)
    if x.numel() == 0:
        return result
    layout = in_place_layout(x, channel_dim)
    if layout is None or in_place_layout(result, channel_dim) != layout:
        moved = x.movedim(channel_dim % x.ndim, 1).contiguous()
        inner = run(lib, moved, k, 1, exact, by_abs, invert, want_out)
        result.copy_(inner.movedim(1, channel_dim % x.ndim))
        return result
    kind, a, length, c = layout
    if k >= length:
        if want_out:
            result.copy_(torch.zeros_like(x) if invert else x)
        else:
            result.fill_(not invert)
        return result
    suffix = _SUFFIX[x.dtype]
    inf, mag = _CONSTS[x.dtype]
    threads = 1 if x.numel() < SERIAL_BELOW else torch.get_num_threads()
    bits = x.view(KEY_DTYPES[x.dtype])
    out_ptr = result.view(KEY_DTYPES[x.dtype]).data_ptr() if want_out else None
    mask_ptr = None if want_out else result.data_ptr()
    if kind == "rows":
        getattr(lib, f"topk_rows_{suffix}")(
            bits.data_ptr(), a, length, k, exact, by_abs, invert, inf, mag, out_ptr, mask_ptr, threads
        )
    else:
        getattr(lib, f"topk_cl_{suffix}")(
            bits.data_ptr(), a, length, c, k, exact, by_abs, invert, inf, mag, out_ptr, mask_ptr, threads
        )
    return result
