"""``TopK``: the thin ``nn.Module`` around :func:`topk_plugin.functional.spatial_topk`."""
from __future__ import annotations

import torch.fx
from torch import nn

from .functional import check_options, spatial_topk, validate_k

# FX symbolic tracing (torchvision's feature extraction, timm's FX features) then
# records one spatial_topk call instead of failing on shape arithmetic.
torch.fx.wrap("spatial_topk")

__all__ = ["TopK"]


class TopK(nn.Module):
    """Spatial Top-K sparsity as a layer; settings are validated here, not at forward.

    It holds no parameters or buffers, so adding it to a model never changes
    the model's ``state_dict``.
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
    ):
        super().__init__()
        validate_k(k)
        check_options(ties, mode, rank_by)
        if channel_dim not in (1, -1):
            raise ValueError(f"channel_dim must be 1 (n, c, *spatial) or -1 (n, tokens, c), got {channel_dim}")
        self.k = k
        self.ties = ties
        self.mode = mode
        self.rank_by = rank_by
        self.invert = bool(invert)
        self.channel_dim = channel_dim

    def forward(self, x):
        return spatial_topk(x, **self.options())

    def options(self) -> dict:
        """The constructor arguments, e.g. to build an equal ``TopK``."""
        return dict(
            k=self.k,
            ties=self.ties,
            mode=self.mode,
            rank_by=self.rank_by,
            invert=self.invert,
            channel_dim=self.channel_dim,
        )

    def extra_repr(self) -> str:
        defaults = dict(ties="exact", mode="keep", rank_by="abs", invert=False, channel_dim=1)
        parts = [f"k={self.k!r}"]
        parts += [f"{key}={value!r}" for key, value in self.options().items() if key in defaults and defaults[key] != value]
        return ", ".join(parts)
