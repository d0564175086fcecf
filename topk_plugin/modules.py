"""Thin ``nn.Module`` wrappers: ``TopK`` around :func:`~topk_plugin.functional.spatial_topk`, and its
controls ``RandomK`` (:func:`~topk_plugin.functional.random_k`) and ``ChannelStatsNorm``
(:func:`~topk_plugin.stats_norm.channel_stats_norm`)."""
from __future__ import annotations

import torch
import torch.fx
from torch import nn

from .functional import check_options, exact_k, random_k, spatial_topk
from .stats_norm import STATS_EPS, channel_stats_norm, validate_eps, validate_strength

# FX symbolic tracing (torchvision's feature extraction, timm's FX features) then
# records one spatial_topk (channel_stats_norm) call instead of failing on shape arithmetic.
torch.fx.wrap("spatial_topk")
torch.fx.wrap("channel_stats_norm")

__all__ = ["TopK", "RandomK", "ChannelStatsNorm"]


class _KAttribute(nn.Module):
    """``k`` as given (what ``options()``, ``repr`` and specs show), validated on every
    assignment, beside its exact form that ``forward`` uses (see ``functional.exact_k``)."""

    @property
    def k(self):
        return self._k

    @k.setter
    def k(self, value) -> None:
        self._k_exact = exact_k(value)
        self._k = value


class _ExactConstants(nn.Module):
    """Calibrated float64 buffers (named in ``_exact``) that ``model.half()`` / ``.to(dtype)`` would
    round: they stay float64 (each forward casts them to the input's dtype) and move with the model."""

    _exact: tuple[str, ...] = ()

    def _apply(self, fn, recurse=True):
        exact = {name: getattr(self, name) for name in self._exact}
        result = super()._apply(fn, recurse)
        for name, value in exact.items():
            now = getattr(self, name)
            if value is not None and now is not None and now.dtype != value.dtype:
                try:
                    setattr(self, name, value.to(device=now.device))
                except (RuntimeError, TypeError):  # a device without float64 (MPS): keep what fn made
                    pass
        return result


def _check_channel_dim(channel_dim: int) -> None:
    if channel_dim not in (1, -1):
        raise ValueError(f"channel_dim must be 1 (n, c, *spatial) or -1 (n, tokens, c), got {channel_dim}")


class TopK(_KAttribute, _ExactConstants):
    """Spatial Top-K sparsity as a layer; settings are validated here, not at forward.

    It holds no parameters, and its only buffer (``shift``, for
    ``fill="shift"``) is non-persistent, so adding it to a model never changes
    the model's ``state_dict``; the shift is saved in a placement spec instead.
    """

    def __init__(
        self,
        k,
        *,
        ties: str = "exact",
        mode: str = "keep",
        rank_by: str = "abs",
        invert: bool = False,
        channel_dim: int = 1,
        fill: str = "zero",
        shift=None,
    ):
        super().__init__()
        self.k = k
        check_options(ties, mode, rank_by, fill)
        _check_channel_dim(channel_dim)
        if shift is not None and fill != "shift":
            raise ValueError(f"shift= is only used with fill='shift', not fill={fill!r}")
        self.ties = ties
        self.mode = mode
        self.rank_by = rank_by
        self.invert = bool(invert)
        self.channel_dim = channel_dim
        self.fill = fill
        # float64 so a shift read from a spec file is the calibrated value exactly
        self.register_buffer("shift", None if shift is None else _as_shift(shift), persistent=False)

    _exact = ("shift",)

    def forward(self, x):
        return spatial_topk(x, **{**self.options(), "k": self._k_exact})

    def options(self) -> dict:
        """The constructor arguments, e.g. to build an equal ``TopK``."""
        options = dict(
            k=self.k,
            ties=self.ties,
            mode=self.mode,
            rank_by=self.rank_by,
            invert=self.invert,
            channel_dim=self.channel_dim,
            fill=self.fill,
        )
        if self.fill == "shift":
            options["shift"] = self.shift
        return options

    def extra_repr(self) -> str:
        defaults = dict(ties="exact", mode="keep", rank_by="abs", invert=False, channel_dim=1, fill="zero")
        parts = [f"k={self.k!r}"]
        parts += [f"{key}={value!r}" for key, value in self.options().items() if key in defaults and defaults[key] != value]
        if self.fill == "shift" and self.shift is None:
            parts.append("uncalibrated")
        return ", ".join(parts)


def _as_shift(shift, name: str = "shift") -> torch.Tensor:
    shift = torch.as_tensor(shift, dtype=torch.float64)
    if shift.ndim != 1:
        raise ValueError(f"{name} must hold one value per channel (1-D), got shape {tuple(shift.shape)}")
    return shift


class RandomK(_KAttribute):
    """Keep K random positions per (sample, channel): the control for ``TopK``.

    Each forward draws a new selection from a generator seeded with ``seed``
    (one per device, made on first use), so a model with ``RandomK`` layers
    gives the same outputs for the same inputs in the same order, run after
    run. ``reset()`` restarts the stream; a copy (``deepcopy``, ``torch.save``)
    restarts it too. CPU and CUDA streams differ. Like ``TopK`` it has no
    parameters or buffers, so ``state_dict`` is unchanged.
    """

    def __init__(self, k, *, seed: int = 0, mode: str = "keep", invert: bool = False, channel_dim: int = 1):
        super().__init__()
        self.k = k
        check_options("exact", mode, "abs")
        _check_channel_dim(channel_dim)
        self.seed = int(seed)
        self.mode = mode
        self.invert = bool(invert)
        self.channel_dim = channel_dim
        self._generators: dict = {}

    def reset(self) -> None:
        """Start the random stream again from ``seed``."""
        self._generators = {}

    def _generator(self, device: torch.device) -> torch.Generator:
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[device]

    def forward(self, x):
        return random_k(x, self._k_exact, generator=self._generator(x.device), mode=self.mode, invert=self.invert,
                        channel_dim=self.channel_dim)

    def options(self) -> dict:
        """The constructor arguments, e.g. to build an equal ``RandomK``."""
        return dict(k=self.k, seed=self.seed, mode=self.mode, invert=self.invert, channel_dim=self.channel_dim)

    def __getstate__(self):
        state = super().__getstate__().copy()
        state["_generators"] = {}  # generators do not pickle; a copy restarts from seed
        return state

    def extra_repr(self) -> str:
        defaults = dict(mode="keep", invert=False, channel_dim=1)
        parts = [f"k={self.k!r}", f"seed={self.seed}"]
        parts += [f"{key}={value!r}" for key, value in self.options().items() if key in defaults and defaults[key] != value]
        return ", ".join(parts)


class ChannelStatsNorm(_ExactConstants):
    """Move each image's per-channel mean and standard deviation toward dataset constants, with
    ``strength`` in (0, 1]: the per-image channel-statistics control for ``TopK`` (no selection, no K).

    ``mean`` and ``std`` (one value per channel, the dataset's ``mu_D`` and ``sd_D``) are
    non-persistent float64 buffers like ``TopK``'s shift: ``state_dict`` is unchanged,
    ``model.half()`` keeps them exact, a placement spec carries them, and
    :func:`topk_plugin.calibrate` measures them. See :mod:`topk_plugin.stats_norm`.
    """

    _exact = ("mean", "std")

    def __init__(self, strength: float, *, channel_dim: int = 1, eps: float = STATS_EPS, mean=None, std=None):
        super().__init__()
        self.strength = validate_strength(strength)
        self.eps = validate_eps(eps)
        _check_channel_dim(channel_dim)
        self.channel_dim = channel_dim
        if (mean is None) != (std is None):
            raise ValueError("give both mean= and std= (the dataset constants), or neither and run topk_plugin.calibrate")
        mean = None if mean is None else _as_shift(mean, "mean")
        std = None if std is None else _as_shift(std, "std")
        if mean is not None and mean.shape != std.shape:
            raise ValueError(f"mean has {len(mean)} values but std has {len(std)}: one of each per channel")
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    @property
    def calibrated(self) -> bool:
        return self.mean is not None

    def forward(self, x):
        if self.mean is None:
            raise ValueError("a ChannelStatsNorm (op='stats-norm') layer is not calibrated: run "
                             "topk_plugin.calibrate(model, images) first (or load a placement spec that has its 'stats')")
        return channel_stats_norm(x, self.strength, mean=self.mean, std=self.std, eps=self.eps,
                                  channel_dim=self.channel_dim)

    def options(self) -> dict:
        """The constructor arguments, e.g. to build an equal ``ChannelStatsNorm``."""
        return dict(strength=self.strength, channel_dim=self.channel_dim, eps=self.eps, mean=self.mean, std=self.std)

    def extra_repr(self) -> str:
        parts = [f"strength={self.strength:g}"]
        if self.channel_dim != 1:
            parts.append(f"channel_dim={self.channel_dim}")
        if self.eps != STATS_EPS:
            parts.append(f"eps={self.eps:g}")
        if self.mean is None:
            parts.append("uncalibrated")
        return ", ".join(parts)
