"""The pure spatial Top-K operation (SPEC section 1), free of any nn.Module state.

``spatial_topk`` keeps, per sample and per channel, the K entries that rank
highest over all spatial positions (or tokens) and zeroes the rest.

Semantics, in one place:

* **K**: a float ``f`` in (0, 1] is a fraction, ``K = max(1, floor(f * L))`` with
  ``L`` the number of positions per channel (the authors' rule). ``f`` is taken
  as the decimal it is written as, so ``0.29 * 100`` gives 29, not the 28 that
  binary rounding would give. An ``int`` k >= 1 is a count, capped at ``L``.
  Note ``1.0`` (all positions) and ``1`` (one position) differ on purpose.
* **Ranking**: by ``|x|`` (``rank_by="abs"``, the paper) or by signed value
  (``rank_by="value"``, the authors' GAN code).
* **Ties** (``ties="exact"``, default): exactly K entries are kept; among entries
  equal to the K-th ranked value the ones with the lowest flat spatial index
  win, so results never depend on the device or the sort algorithm.
  ``ties="threshold"`` is the paper's Eq. 1: every entry ranking at least as high
  as the K-th one is kept, which can keep more than K.
* **NaN and inf**: NaN ranks above every number (as in ``torch.topk`` and
  ``torch.sort``), so NaNs are always kept first and propagate instead of being
  silently zeroed; ``-0.0`` and ``+0.0`` rank equal. ``+-inf`` rank by their
  value (``|x|`` ranks both at the top). In ``mode="mean"`` a kept NaN or
  infinities of both signs make that channel's mean NaN.
* **Modes**: ``mode="keep"`` keeps the selected values; ``mode="mean"`` (the
  paper's mean replacement) writes the mean of the selected values of that
  channel into every selected position. ``invert=True`` selects the complement
  (every entry except the Top-K), then applies the mode.
* **Gradient**: in ``keep`` mode selected entries pass the gradient unchanged
  and the others get 0 (no straight-through). In ``mean`` mode the gradient is
  that of the mean. Only a bool mask is saved for backward.
* **Fill** (what happens to the entries that are not selected):
  ``fill="zero"`` (the paper) sets them to 0. ``fill="image-mean"`` gives each
  of them their own mean, per sample and channel (zeros included): their
  per-image level stays, their spatial pattern goes. ``fill="shift"`` is
  ``fill="zero"`` followed by adding one constant per channel (``shift``) to
  the *whole* channel, kept entries included: a per-channel offset, not a
  replacement of the removed entries. :func:`topk_plugin.calibrate` sets it to
  the dataset mean of what Top-K removes, so each channel keeps its dataset mean.
* **Layout**: ``(n, c, *spatial)`` with 1 to 3 spatial dims (``channel_dim=1``),
  or channel-last token tensors ``(n, tokens, c)`` (``channel_dim=-1``, for
  ViT-style models). Any device, float16/bfloat16/float32/float64, contiguous or
  channels_last; the output keeps the input's memory format.

The control op with no selection, :func:`channel_stats_norm` (per-image channel
statistics moved toward dataset constants), lives in :mod:`topk_plugin.stats_norm`
and is re-exported here.
"""
from __future__ import annotations

import numbers
from fractions import Fraction

import torch

from .kernel import dispatch, layout, torch_path
from .stats_norm import channel_stats, channel_stats_norm

__all__ = [
    "spatial_topk", "random_k", "random_mask", "resolve_k", "exact_k", "ExactFraction", "topk_mask", "validate_k", "check_options",
    "TIES", "MODES", "RANK_BY", "FILLS", "channel_stats_norm", "channel_stats",
]

TIES = ("exact", "threshold")
MODES = ("keep", "mean")
RANK_BY = ("abs", "value")
FILLS = ("zero", "shift", "image-mean")

def validate_k(k) -> None:
    """Raise a clear error unless ``k`` is a fraction in (0, 1] or an int count >= 1."""
    if isinstance(k, bool) or not isinstance(k, numbers.Real):
        raise TypeError(
            f"k must be a float fraction in (0, 1] or an int count >= 1, got {k!r} "
            f"of type {type(k).__name__}"
        )
    if isinstance(k, numbers.Integral):
        if k < 1:
            raise ValueError(
                f"k={k} is not a valid count: an int k must be >= 1 "
                "(pass a float such as 0.1 for a fraction of the positions)"
            )
        return
    f = float(k)
    if not (0.0 < f <= 1.0):  # also rejects NaN
        hint = (
            f"; for a count of {int(f)} positions pass the int {int(f)}"
            if f > 1 and f.is_integer()
            else ""
        )
        raise ValueError(
            f"k={k!r} is not a valid fraction: a float k must lie in (0, 1] "
            f"(1.0 keeps everything){hint}; non-integer counts are not allowed"
        )


class ExactFraction(float):
    """A fraction ``k`` that remembers the decimal it was written as: ``0.29`` is 29/100
    (``numerator``, ``denominator``), although its binary value is a little less.

    Why a float subclass: ``TopK`` keeps one next to ``k`` so that a compiled model never
    turns a float into its decimal. Under ``torch.compile(dynamic=True)`` a float attribute
    becomes symbolic and has no ``repr``; integer parts read from this object trace, and
    FX symbolic tracing records it as the float it is.
    """

    def __new__(cls, k):
        validate_k(k)
        if isinstance(k, numbers.Integral):
            raise TypeError(f"ExactFraction holds a fraction in (0, 1], not the count {k!r}")
        ratio = k if isinstance(k, Fraction) else Fraction(repr(float(k)))
        self = super().__new__(cls, float(k))
        self.numerator, self.denominator = ratio.numerator, ratio.denominator
        return self


def exact_k(k) -> int | ExactFraction:
    """``k`` as :func:`resolve_k` reads it: an int count, or an :class:`ExactFraction`
    (a ``fractions.Fraction`` is taken exactly)."""
    if isinstance(k, ExactFraction):
        return k  # validated when made
    validate_k(k)
    return int(k) if isinstance(k, numbers.Integral) else ExactFraction(k)


def resolve_k(k, positions: int) -> int:
    """The number K of entries kept out of ``positions`` per (sample, channel).

    Integer arithmetic only, so under ``torch.compile`` / ``torch.export`` a
    symbolic ``positions`` (several activation sizes, dynamic shapes) gives a
    symbolic K with no guard on its value.
    """
    k = exact_k(k)
    if isinstance(positions, int) and positions < 1:
        raise ValueError(f"cannot select from {positions} positions")
    if isinstance(k, int):
        return torch.sym_min(k, positions)
    return torch.sym_max(1, torch.sym_min(positions, (k.numerator * positions) // k.denominator))


def _keeps_all(k, positions) -> bool:
    """Whether K covers every position (the op is then the identity in ``keep`` mode).

    A fraction below 1 keeps fewer than ``positions`` unless there is a single
    position; only an int count compares with the (maybe symbolic) size.
    """
    if isinstance(k, numbers.Integral):
        return int(k) >= positions
    return k >= 1 or positions == 1


def check_options(ties: str, mode: str, rank_by: str, fill: str = "zero") -> None:
    """Raise a clear error for an unknown ``ties``, ``mode``, ``rank_by`` or ``fill``."""
    for name, value, allowed in (("ties", ties, TIES), ("mode", mode, MODES), ("rank_by", rank_by, RANK_BY),
                                 ("fill", fill, FILLS)):
        if value not in allowed:
            raise ValueError(f"{name}={value!r} is not one of {', '.join(map(repr, allowed))}")


def topk_mask(
    x: torch.Tensor, k, *, ties: str = "exact", rank_by: str = "abs", channel_dim: int = 1
) -> torch.Tensor:
    """Bool mask of the Top-K entries of ``x`` per (sample, channel); see module doc."""
    _check_input(x, channel_dim)
    check_options(ties, "keep", rank_by)
    count = layout.positions(x, channel_dim)
    kk = resolve_k(k, count)
    if dispatch.use_kernel(x, channel_dim):
        return dispatch.topk_mask_op(x.detach(), kk, channel_dim, ties == "exact", rank_by == "abs", False)
    return torch_path.topk_mask(x, kk, channel_dim, ties == "exact", rank_by == "abs", _keeps_all(k, count))


def _check_input(x: torch.Tensor, channel_dim: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"spatial_topk expects a torch.Tensor, got {type(x).__name__}")
    if not 3 <= x.ndim <= 5:
        raise ValueError(
            f"spatial_topk expects a 3-D to 5-D tensor (n, c, *spatial) or (n, tokens, c), "
            f"got shape {tuple(x.shape)} ({x.ndim}-D). A 2-D output (e.g. of a Linear "
            "layer) has no spatial positions: apply Top-K to an earlier layer."
        )
    if x.dtype not in layout.KEY_DTYPES:
        raise TypeError(
            f"spatial_topk expects a floating tensor (float16, bfloat16, float32, float64), "
            f"got {x.dtype}"
        )
    if not -x.ndim <= channel_dim < x.ndim or channel_dim % x.ndim == 0:
        raise ValueError(
            f"channel_dim={channel_dim} is invalid for a {x.ndim}-D tensor: use 1 for "
            "(n, c, *spatial) or -1 for (n, tokens, c); dim 0 is the batch"
        )


def spatial_topk(
    x: torch.Tensor,
    k: float | int,
    *,
    ties: str = "exact",
    mode: str = "keep",
    rank_by: str = "abs",
    invert: bool = False,
    channel_dim: int = 1,
    fill: str = "zero",
    shift: torch.Tensor | None = None,
) -> torch.Tensor:
    """Keep the Top-K entries of ``x`` per sample and channel over all positions.

    Args:
        x: ``(n, c, *spatial)`` (1 to 3 spatial dims) or ``(n, tokens, c)`` with
            ``channel_dim=-1``.
        k: fraction in (0, 1] or int count >= 1 (see the module docstring).
        ties: ``"exact"`` (K entries, lowest index wins ties) or ``"threshold"``.
        mode: ``"keep"`` or ``"mean"`` (mean replacement).
        rank_by: ``"abs"`` or ``"value"``.
        invert: select every entry except the Top-K ones.
        channel_dim: the channel axis, 1 or -1.
        fill: ``"zero"`` (the unselected entries become 0), ``"image-mean"`` (they
            become their per-sample, per-channel mean) or ``"shift"`` (``"zero"``, then
            ``shift`` is added to every entry of its channel, selected ones too); see
            the module docstring.
        shift: for ``fill="shift"``, one value per channel (any device; cast to ``x``'s
            dtype and device).

    Returns a tensor of ``x``'s shape, dtype, device and memory format.
    """
    _check_input(x, channel_dim)
    check_options(ties, mode, rank_by, fill)
    if fill == "shift":
        return _zero_fill(x, k, ties, mode, rank_by, invert, channel_dim) + _channel_shift(shift, x, channel_dim)
    if shift is not None:
        raise ValueError(f"shift= is only used with fill='shift', not fill={fill!r}")
    if fill == "image-mean":
        mask = topk_mask(x, k, ties=ties, rank_by=rank_by, channel_dim=channel_dim)
        if invert:
            mask = ~mask
        selected = torch.where(mask, x, 0.0) if mode == "keep" else _mean_fill_like(x, mask, channel_dim)
        return torch.where(mask, selected, _mean_fill_like(x, ~mask, channel_dim))
    return _zero_fill(x, k, ties, mode, rank_by, invert, channel_dim)


def _channel_shift(shift, x: torch.Tensor, channel_dim: int) -> torch.Tensor:
    """``shift`` as ``x``'s dtype and device, shaped to broadcast along ``x``'s channel axis."""
    c_dim = channel_dim % x.ndim
    channels = x.shape[c_dim]
    if shift is None:
        raise ValueError("fill='shift' needs the per-channel shift: calibrate it with "
                         "topk_plugin.calibrate(model, images), or pass shift= (one value per channel)")
    shift = torch.as_tensor(shift)
    if shift.shape != (channels,):
        raise ValueError(f"shift has shape {tuple(shift.shape)} but the input has {channels} channels "
                         f"(shape {tuple(x.shape)}); calibrate it on this layer with topk_plugin.calibrate")
    return shift.to(device=x.device, dtype=x.dtype).reshape((channels,) + (1,) * (x.ndim - 1 - c_dim))


def _zero_fill(x, k, ties, mode, rank_by, invert, channel_dim) -> torch.Tensor:
    """The selected entries (kept or mean-replaced), zeros elsewhere."""
    if dispatch.use_kernel(x, channel_dim):
        return _spatial_topk_kernel(x, k, ties, mode, rank_by, invert, channel_dim)
    view, dim, unflatten = layout.rows(x, channel_dim)
    kk = resolve_k(k, view.shape[dim])
    keeps_all = _keeps_all(k, view.shape[dim])
    if keeps_all and mode == "keep" and not invert:
        return x  # K covers every position: the identity
    mask = torch_path.row_mask(view, dim, kk, ties == "exact", rank_by == "abs", keeps_all)
    if invert:
        mask = ~mask
    if mode == "keep":
        return torch.where(unflatten(mask), x, 0.0)
    return unflatten(_mean_fill(view, mask, dim))


def random_mask(x: torch.Tensor, k, *, generator: torch.Generator | None = None, channel_dim: int = 1) -> torch.Tensor:
    """Bool mask of K uniformly random positions per (sample, channel), laid out like ``x``.

    The positions are the Top-K of i.i.d. uniform noise drawn from ``generator``
    (on ``x``'s device; default: the global RNG), so the count is exactly the
    K of :func:`resolve_k` and a seeded generator repeats the draw.
    """
    _check_input(x, channel_dim)
    noise = torch.empty_like(x, dtype=torch.float32).uniform_(generator=generator)
    return topk_mask(noise, k, rank_by="value", channel_dim=channel_dim)


def random_k(
    x: torch.Tensor,
    k,
    *,
    generator: torch.Generator | None = None,
    mode: str = "keep",
    invert: bool = False,
    channel_dim: int = 1,
) -> torch.Tensor:
    """The control for :func:`spatial_topk`: keep K *random* positions per (sample, channel).

    Same K rule, layouts, modes and gradient as ``spatial_topk``; only the
    selection ignores the values. A fresh draw per call from ``generator``
    (seed it for reproducible runs; ``topk_plugin.RandomK`` holds one).
    """
    check_options("exact", mode, "abs")
    mask = random_mask(x, k, generator=generator, channel_dim=channel_dim)
    if invert:
        mask = ~mask
    if mode == "keep":
        return torch.where(mask, x, 0.0)
    return _mean_fill_like(x, mask, channel_dim)


def _mean_fill_like(x: torch.Tensor, mask: torch.Tensor, channel_dim: int) -> torch.Tensor:
    """Mean replacement for a mask shaped like ``x`` (whatever the mask's strides)."""
    view, dim, unflatten = layout.rows(x, channel_dim)
    c_dim = channel_dim % x.ndim
    if dim == 1:
        mask_rows = mask.movedim(c_dim, -1).reshape(view.shape)
    else:
        mask_rows = mask.movedim(c_dim, 1).reshape(view.shape)
    return unflatten(_mean_fill(view, mask_rows, dim))


def _mean_fill(view: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean replacement: the mean of the selected entries of each row at every selected entry."""
    acc = torch.float64 if view.dtype == torch.float64 else torch.float32
    total = torch.where(mask, view, 0.0).sum(dim=dim, keepdim=True, dtype=acc)
    count = mask.sum(dim=dim, keepdim=True).clamp_min(1)
    mean = (total / count).to(view.dtype)
    return torch.where(mask, mean, 0.0)


def _spatial_topk_kernel(x, k, ties, mode, rank_by, invert, channel_dim):
    """``spatial_topk`` through the kernel's custom ops (:mod:`topk_plugin.kernel.dispatch`); same bits.

    Without autograd the ``keep`` result comes straight from the kernel (one
    pass); otherwise the kernel writes the bool mask and ``torch.where`` applies
    it, so backward saves only that mask.
    """
    count = layout.positions(x, channel_dim)
    kk = resolve_k(k, count)
    if _keeps_all(k, count) and mode == "keep" and not invert:
        return x  # K covers every position: the identity
    args = (kk, channel_dim, ties == "exact", rank_by == "abs", invert)
    if mode == "keep":
        if not (torch.is_grad_enabled() and x.requires_grad):
            return dispatch.topk_keep_op(x, *args)
        return torch.where(dispatch.topk_mask_op(x.detach(), *args), x, 0.0)
    return _mean_fill_like(x, dispatch.topk_mask_op(x.detach(), *args), channel_dim)
