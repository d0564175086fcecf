"""Apply a placement to a built model, including timm's ``features_only`` wrappers.

timm's feature wrappers hold the same module objects under other names:
``FeatureListNet`` flattens the first level of ``nn.Sequential`` stages
(``stages.1`` -> ``stages_1``), ``FeatureGetterNet`` keeps the model under
``model.`` and all of them drop the stages after the last requested feature.
The placement is data in the plain model's names, so it is mapped here; a
layer that the wrapper dropped cannot change any returned feature and is
skipped (listed in ``model.topk_variant["skipped"]``).
"""
from __future__ import annotations

from torch import nn

from ..surgery import sparsify
from .names import VariantName
from .placements import Placement

__all__ = ["apply_placement", "map_layer_name"]


def _is_feature_wrapper(model: nn.Module) -> bool:
    return type(model).__module__.startswith("timm.") and hasattr(model, "feature_info") and (
        type(model).__name__.startswith("Feature") or type(model).__name__.endswith("Features")
    )


def map_layer_name(model: nn.Module, name: str) -> str | None:
    """``name`` (plain-model naming) as it is called in ``model``, or None if absent."""
    modules = dict(model.named_modules())
    if name in modules:
        return name
    head, dot, rest = name.partition(".")
    if dot:
        second, dot2, tail = rest.partition(".")
        flat = f"{head}_{second}" + (f".{tail}" if dot2 else "")
        if flat in modules:  # FeatureDictNet / FeatureListNet with flatten_sequential
            return flat
    if f"model.{name}" in modules:  # FeatureGetterNet
        return f"model.{name}"
    return None


def apply_placement(model: nn.Module, variant: VariantName, placement: Placement, source: str) -> nn.Module:
    """Sparsify ``model`` in place (``method="module"``: state_dict keys unchanged)."""
    wrapped = _is_feature_wrapper(model)
    if wrapped:
        mapped = {layer: map_layer_name(model, layer) for layer in placement.layers}
        layers = [m for m in mapped.values() if m is not None]
        skipped = [layer for layer, m in mapped.items() if m is None]
    else:
        layers, skipped = list(placement.layers), []
    if layers:
        sparsify(model, layers, variant.k, method="module", mode=variant.mode, channel_dim=placement.channel_dim)
    model.topk_variant = dict(
        name=variant.name,
        source=source,
        base=variant.base,
        k=variant.k,
        mode=variant.mode,
        layers=list(placement.layers),
        applied=layers,
        skipped=skipped,
        rule=placement.rule,
        channel_dim=placement.channel_dim,
    )
    cfg = getattr(model, "pretrained_cfg", None)
    if isinstance(cfg, dict) and "architecture" in cfg:
        # so a saved config (e.g. push_to_hub) rebuilds the sparse variant, not the base
        model.pretrained_cfg = {**cfg, "architecture": variant.name}
        if hasattr(model, "default_cfg"):
            model.default_cfg = model.pretrained_cfg
    return model
