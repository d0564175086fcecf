"""Per-image channel-statistics normalisation: a control op for Top-K (SPEC section 3, not in the paper).

Why: at the placements the search picks, Top-K raises shape bias by removing the
per-image level of each channel's weak responses (``fill="image-mean"`` gives the
gain back). A channel's per-image mean and spread are what style transfer calls
the image's style (instance normalisation, AdaIN). This op removes them directly,
with no selection, so a search can ask whether Top-K is special or any removal of
per-image channel statistics does the same.

For ``x`` of shape ``(n, c, *spatial)`` (or ``(n, tokens, c)`` with ``channel_dim=-1``),
per sample ``i`` and channel, over its positions:

* ``mu_i`` is the mean and ``sd_i`` the population standard deviation (divisor: the
  number of positions);
* ``mean`` and ``std`` (``mu_D``, ``sd_D``) are one dataset constant per channel: the
  means of ``mu_i`` and ``sd_i`` over calibration images (:func:`topk_plugin.calibrate`);
* ``y = (1 - a) x + a ((x - mu_i) / (sd_i + eps) * sd_D + mu_D)`` with the strength
  ``a`` in (0, 1]. At ``a = 1`` every image gets the dataset's average per-channel
  statistics (instance normalisation followed by a fixed AdaIN); the spatial pattern
  of each channel is kept, only its level and spread change.

Numerics, in one place:

* A *constant* channel (``sd_i = 0``, e.g. all zeros after a ReLU) returns
  ``(1 - a) x + a mu_D``: its level moves toward the dataset's, with no NaN and a
  finite gradient (its ``x - mu_i`` is exactly 0: the statistics come from one
  Welford pass, which keeps a constant channel's mean exact).
* Statistics and output are computed in float32 (float64 for float64 inputs) and
  cast back, so float16/bfloat16 inputs neither overflow in the variance nor in
  ``sd_D / eps``. The output is one affine map per (sample, channel), one pass over ``x``.
* NaN or inf in a channel make that channel's output NaN (its mean is NaN).
* Any device and floating dtype, contiguous or channels_last. Gradients flow through
  ``x`` and the statistics (as in instance normalisation); the constants are not learned.
"""
from __future__ import annotations

import numbers

import torch

from .kernel import layout

__all__ = ["channel_stats", "channel_stats_norm", "validate_strength", "check_stats_input", "STATS_EPS"]

STATS_EPS = 1e-5  # as torch.nn.InstanceNorm2d


def validate_strength(strength) -> float:
    """``strength`` as a float, or a clear error unless it is a number in (0, 1]."""
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real):
        raise TypeError(f"strength must be a number in (0, 1], got {strength!r} of type {type(strength).__name__}")
    value = float(strength)
    if not 0.0 < value <= 1.0:  # also rejects NaN
        raise ValueError(f"strength={strength!r} must lie in (0, 1]: 1 replaces each image's channel statistics "
                         "by the dataset's, smaller values move them part of the way")
    return value


def validate_eps(eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not float(eps) > 0:
        raise ValueError(f"eps={eps!r} must be a number > 0 (it keeps a constant channel finite)")
    return float(eps)


def check_stats_input(x: torch.Tensor, channel_dim: int) -> None:
    """Raise a clear error unless ``x`` is a 3-D to 5-D floating tensor with a valid ``channel_dim``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"channel_stats_norm expects a torch.Tensor, got {type(x).__name__}")
    if not 3 <= x.ndim <= 5:
        raise ValueError(
            f"channel_stats_norm expects a 3-D to 5-D tensor (n, c, *spatial) or (n, tokens, c), got shape "
            f"{tuple(x.shape)} ({x.ndim}-D). A 2-D output (e.g. of a Linear layer) has no positions to take "
            "statistics over: choose an earlier layer."
        )
    if x.dtype not in layout.KEY_DTYPES:
        raise TypeError(f"channel_stats_norm expects a floating tensor (float16, bfloat16, float32, float64), got {x.dtype}")
    if channel_dim not in (1, -1):
        raise ValueError(f"channel_dim={channel_dim} is invalid: use 1 for (n, c, *spatial) or -1 for (n, tokens, c)")
    count = layout.positions(x, channel_dim)
    if isinstance(count, int) and count < 1:
        raise ValueError(f"channel_stats_norm needs at least one position per channel, got shape {tuple(x.shape)}")


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _moments(x: torch.Tensor, channel_dim: int):
    """``(x in the compute dtype, mu_i, sd_i)``; the statistics keep their dims for broadcasting.

    One Welford pass (``torch.var_mean``): on a constant channel every update adds exactly 0,
    so its mean is its value and its variance exactly 0.
    """
    c_dim = channel_dim % x.ndim
    dims = [d for d in range(1, x.ndim) if d != c_dim]
    values = x.to(_compute_dtype(x))
    var, mu = torch.var_mean(values, dim=dims, correction=0, keepdim=True)
    positive = var > 0
    # sqrt has an infinite slope at 0: the double where keeps a constant channel's gradient finite
    sd = torch.where(positive, torch.where(positive, var, 1.0).sqrt(), 0.0)
    return values, mu, sd


def channel_stats(x: torch.Tensor, channel_dim: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample and channel, over the positions: ``(mu_i, sd_i)``, each ``(n, c)``, as the op computes them
    (population standard deviation). :func:`topk_plugin.calibrate` averages them into ``mean`` and ``std``."""
    check_stats_input(x, channel_dim)
    _, mu, sd = _moments(x, channel_dim)
    c_dim = channel_dim % x.ndim
    shape = (x.shape[0], x.shape[c_dim])
    return mu.movedim(c_dim, 1).reshape(shape), sd.movedim(c_dim, 1).reshape(shape)


def _constant(value, name: str, x: torch.Tensor, channel_dim: int, dtype: torch.dtype) -> torch.Tensor:
    """A per-channel constant as ``dtype`` on ``x``'s device, shaped to broadcast along the channel axis."""
    c_dim = channel_dim % x.ndim
    channels = x.shape[c_dim]
    value = torch.as_tensor(value)
    if value.shape != (channels,):
        raise ValueError(f"{name} has shape {tuple(value.shape)} but the input has {channels} channels "
                         f"(shape {tuple(x.shape)}); calibrate it on this layer with topk_plugin.calibrate")
    return value.to(device=x.device, dtype=dtype).reshape((channels,) + (1,) * (x.ndim - 1 - c_dim))


def channel_stats_norm(
    x: torch.Tensor,
    strength: float,
    *,
    mean,
    std,
    eps: float = STATS_EPS,
    channel_dim: int = 1,
) -> torch.Tensor:
    """Move each image's per-channel mean and standard deviation toward the dataset's (see the module doc).

    Args:
        x: ``(n, c, *spatial)`` (1 to 3 spatial dims) or ``(n, tokens, c)`` with ``channel_dim=-1``.
        strength: ``a`` in (0, 1]; 1 replaces the statistics, smaller values interpolate toward ``x``.
        mean (torch.Tensor | Sequence[float]): the dataset constant ``mu_D``, one value per channel
            (any device and dtype; used in float32, or float64 for float64 inputs).
        std (torch.Tensor | Sequence[float]): the dataset constant ``sd_D``, likewise.
        eps: added to ``sd_i`` (> 0).
        channel_dim: the channel axis, 1 or -1.

    Returns a tensor of ``x``'s shape, dtype and device.
    """
    a = validate_strength(strength)
    eps = validate_eps(eps)
    check_stats_input(x, channel_dim)
    if mean is None or std is None:
        raise ValueError("channel_stats_norm needs the dataset constants mean= and std= (one value per channel): "
                         "sparsify(model, layers, op='stats-norm', strength=...) then topk_plugin.calibrate(model, images)")
    values, mu, sd = _moments(x, channel_dim)
    dtype = values.dtype
    mean_d = _constant(mean, "mean", x, channel_dim, dtype)
    std_d = _constant(std, "std", x, channel_dim, dtype)
    # y = (1 - a) x + a ((x - mu_i) g + mu_D) with g = sd_D / (sd_i + eps), as one affine map per
    # (sample, channel): y = x * scale + shift. A constant channel's (x - mu_i) is 0 whatever g is:
    # g = 0 there keeps its output (1 - a) x + a mu_D free of the rounding of a large g times x.
    gain = torch.where(sd > 0, (a * std_d) / (sd + eps), 0.0)
    scale = gain + (1.0 - a) if a != 1.0 else gain
    return torch.addcmul(a * mean_d - gain * mu, values, scale).to(x.dtype)
