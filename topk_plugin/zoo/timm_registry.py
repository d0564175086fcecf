"""``<base>_topk<pct>[mean]`` as timm model names (``timm.create_model``, ``list_models``).

timm's ``register_model`` registers ``fn.__name__`` and takes the pretrained
cfgs from ``default_cfgs`` of ``fn``'s module, so each variant gets a thin
entrypoint named after it and a copy of its base's pretrained cfgs (hub ids
and URLs unchanged): ``pretrained=True`` fetches the base's weights through
timm's own machinery, and ``pretrained_cfg_overlay=dict(file=PATH)`` loads a
local file. Building calls the base's entrypoint, then applies the placement.
"""
from __future__ import annotations

from collections import deque

import timm
from timm.models import get_arch_pretrained_cfgs, is_model, model_entrypoint, register_model, split_model_name_tag
from timm.models._pretrained import DefaultCfg  # the type timm's registry expects

from . import cifar_resnet  # noqa: F401  (registers resnet18_cifar with timm before register_timm)
from .apply import apply_placement
from .names import EAGER_PCTS, MODES, VariantName
from .placements import TIMM, Placement
from .rules import timm_default

__all__ = ["register_timm", "build_timm", "timm_placement", "registered_timm_names"]

# Read by timm's register_model (sys.modules[fn.__module__].default_cfgs).
default_cfgs: dict = {}
_REGISTERED: list[str] = []


def timm_placement(base: str, model=None) -> Placement:
    """The registered placement of ``base``, else the default rule applied to ``model``."""
    placement = TIMM.get(base)
    if placement is None:
        if model is None:
            model = timm.create_model(base, pretrained=False)
        placement = timm_default(model)
    return placement


def build_timm(variant: VariantName, pretrained: bool = False, *, sparse: bool = True, **kwargs):
    """The base model from timm's entrypoint (weights, features_only, ...), then Top-K."""
    if not is_model(variant.base):
        raise ValueError(f"timm has no model {variant.base!r}")
    model = model_entrypoint(variant.base)(pretrained=pretrained, **kwargs)
    if not sparse:
        return model
    return apply_placement(model, variant, timm_placement(variant.base, model), "timm")


def _base_default_cfg(base: str):
    """A DefaultCfg holding the base's resolved pretrained cfgs, default tag first."""
    cfgs = get_arch_pretrained_cfgs(base)
    if not cfgs:
        return None
    tagged = {split_model_name_tag(name)[1]: cfg for name, cfg in cfgs.items()}
    return DefaultCfg(
        tags=deque(tagged),
        cfgs=tagged,
        is_pretrained=any(cfg.has_weights for cfg in tagged.values()),
    )


def _entrypoint(variant: VariantName):
    def entrypoint(pretrained: bool = False, **kwargs):
        return build_timm(variant, pretrained=pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = variant.name
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = (
        f"timm {variant.base} with spatial Top-K (k={variant.k}, mode={variant.mode!r}) at "
        f"{', '.join(TIMM[variant.base].layers)}; weights are {variant.base}'s."
    )
    return entrypoint


def registered_timm_names() -> list[str]:
    """Every variant name this module registered with timm."""
    return list(_REGISTERED)


def register_timm() -> list[str]:
    """Register every base in ``placements.TIMM`` for every eager percent and mode (idempotent)."""
    if _REGISTERED:
        return registered_timm_names()
    for base in TIMM:
        if not is_model(base):
            raise RuntimeError(f"timm {timm.__version__} has no model {base!r}; update placements.TIMM")
        default_cfg = _base_default_cfg(base)
        for pct in EAGER_PCTS:
            for mode in MODES.values():
                variant = VariantName(base, pct, mode)
                if default_cfg is not None:
                    default_cfgs[variant.name] = default_cfg
                fn = _entrypoint(variant)
                register_model(fn)
                _REGISTERED.append(variant.name)
    return registered_timm_names()
