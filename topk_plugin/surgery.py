"""Putting Top-K after chosen layers of an existing model, and taking it out again.

Two methods, both leaving ``state_dict()`` keys untouched (``TopK`` has no
parameters or buffers), so pretrained weights load before or after:

* ``method="module"``: the layer gets a visible ``TopK`` child named ``topk``
  and its class is swapped for a subclass whose ``forward`` ends with that
  child (the technique ``torch.nn.utils.parametrize`` uses). It shows in
  ``print(model)``, is part of ``forward`` (so FX, ``torch.export`` and
  ``torch.compile`` see it), and survives ``deepcopy`` and ``torch.save``.
* ``method="hook"``: a forward hook applies a ``TopK``; nothing is added to
  the module tree. Hooks also pickle and deepcopy; FX symbolic tracing skips
  hooks, so prefer ``"module"`` for FX-based tools.
"""
from __future__ import annotations

import contextlib
import inspect
import operator
import os
import zlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence

from torch import nn

from .attachment import (
    BASE_ATTR,
    CHILD_NAME,
    OPS,
    NotATensorError,
    Op,
    TopKHook,
    checked_output,
    hook_keys,
    is_swapped,
    sparsified_layers,
)
from .layers import resolve_layers
from .modules import ChannelStatsNorm, RandomK, TopK
from .placement_spec import PlacementSpec, load_placement

__all__ = ["sparsify", "unsparsify", "sparsified", "sparsified_layers", "attached", "METHODS", "OPS", "NotATensorError"]

METHODS = ("module", "hook")


# --- method="module": class swap --------------------------------------------------

_SPARSE_CLASSES: dict[type, type] = {}


def _sparse_forward(self, *args, **kwargs):
    output = self._topk_plugin_base.forward(self, *args, **kwargs)
    return getattr(self, CHILD_NAME)(checked_output(self, output))


def _rebuild(base: type) -> nn.Module:
    """Unpickling/deepcopy entry point: an empty instance of the swapped class."""
    return object.__new__(_sparse_class(base))


def _reduce_ex(self, protocol):
    return _rebuild, (self._topk_plugin_base,), self.__getstate__()


def _members(self) -> list:
    return [(name, m) for name, m in self._modules.items() if name != CHILD_NAME]


def _seq_iter(self):
    return iter([m for _, m in _members(self)])


def _seq_len(self) -> int:
    return len(_members(self))


def _seq_getitem(self, idx):
    members = _members(self)
    if isinstance(idx, slice):
        return self._topk_plugin_base(OrderedDict(members[idx]))
    return members[operator.index(idx)][1]


def _list_getitem(self, idx):
    members = [m for _, m in _members(self)]
    if isinstance(idx, slice):
        return self._topk_plugin_base(members[idx])
    return members[operator.index(idx)]


def _dict_getitem(self, key):
    if key == CHILD_NAME:
        raise KeyError(key)
    return self._modules[key]


# Containers run their members by iterating over themselves (nn.Sequential's
# forward; timm's DenseBlock(nn.ModuleDict) and friends): hide the topk child
# from iteration, len() and indexing so it runs once, after the container.
_CONTAINER_VIEWS = {
    nn.Sequential: {"__iter__": _seq_iter, "__len__": _seq_len, "__getitem__": _seq_getitem},
    nn.ModuleList: {"__iter__": _seq_iter, "__len__": _seq_len, "__getitem__": _list_getitem},
    nn.ModuleDict: {
        "__iter__": lambda self: iter([name for name, _ in _members(self)]),
        "__len__": _seq_len,
        "__getitem__": _dict_getitem,
        "__contains__": lambda self, key: key != CHILD_NAME and key in self._modules,
        "keys": lambda self: [name for name, _ in _members(self)],
        "items": _members,
        "values": lambda self: [m for _, m in _members(self)],
    },
}


def _sparse_class(base: type) -> type:
    """The cached subclass of ``base`` whose forward applies the ``topk`` child."""
    if base not in _SPARSE_CLASSES:
        namespace = {
            "forward": _sparse_forward,
            "__reduce_ex__": _reduce_ex,
            BASE_ATTR: base,
            "__module__": base.__module__,
            "__qualname__": base.__qualname__,
            "__doc__": base.__doc__,
        }
        for container, view in _CONTAINER_VIEWS.items():
            if issubclass(base, container):
                namespace.update(view)
        _SPARSE_CLASSES[base] = type(base.__name__, (base,), namespace)
    return _SPARSE_CLASSES[base]


# --- method="hook" ----------------------------------------------------------------


# --- public API -------------------------------------------------------------------


def _layer_seed(seed: int, name: str) -> int:
    """Each layer's own random stream, fixed by ``seed`` and the layer name."""
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode())) % (1 << 62)


_TOPK_DEFAULTS = dict(ties="exact", mode="keep", rank_by="abs", invert=False, fill="zero")


def _make_stats_norm(layer_value, options: dict) -> ChannelStatsNorm:
    """``op="stats-norm"``: a layer's value is its strength, or a dict of ``ChannelStatsNorm`` options."""
    for key, default in _TOPK_DEFAULTS.items():
        if options[key] != default:
            raise ValueError(f"{key}= has no meaning for op='stats-norm' (it selects nothing); leave it at {default!r}")
    settings = dict(layer_value) if isinstance(layer_value, Mapping) else {"strength": layer_value}
    if "k" in settings:
        raise ValueError("op='stats-norm' has no K: give each layer its strength (in (0, 1]) instead of k")
    return ChannelStatsNorm(**{"channel_dim": options["channel_dim"], **settings})


def _make_op(name: str, layer_k, op: str, options: dict, seed: int) -> Op:
    if op == "stats-norm":
        return _make_stats_norm(layer_k, options)
    settings = {**options, **layer_k} if isinstance(layer_k, Mapping) else {**options, "k": layer_k}
    if op == "topk":
        return TopK(**settings)
    for key, default in (("ties", "exact"), ("rank_by", "abs")):
        if settings.pop(key) != default:
            raise ValueError(f"{key}= has no meaning for op='random' (it ignores the values); leave it at {default!r}")
    if settings.pop("fill") != "zero":
        raise ValueError("op='random' supports only fill='zero' (the control of the paper's op); leave fill at 'zero'")
    return RandomK(**settings, seed=_layer_seed(seed, name))


def _is_spec(model: nn.Module, layers) -> bool:
    """A placement spec, its path, or a ``str`` path ending in ``.json`` that names no module."""
    if isinstance(layers, (PlacementSpec, os.PathLike)):
        return True
    return isinstance(layers, str) and layers.endswith(".json") and layers not in dict(model.named_modules())


def sparsify(
    model: nn.Module,
    layers: str | type[nn.Module] | Sequence | Mapping | PlacementSpec | os.PathLike,
    k: float | int | None = None,
    *,
    method: str = "module",
    op: str = "topk",
    strength: float | None = None,
    seed: int = 0,
    ties: str = "exact",
    mode: str = "keep",
    rank_by: str = "abs",
    invert: bool = False,
    channel_dim: int = 1,
    fill: str = "zero",
) -> nn.Module:
    """Apply spatial Top-K (or a control op) to the output of each selected layer, in place.

    Args:
        model: any ``nn.Module`` (timm, torchvision, your own).
        layers: a module name, a glob pattern (``"features.*"``), an
            ``nn.Module`` subclass, a list of these, or a dict mapping each of
            these to its own k (or to a dict of ``TopK`` options). Or a
            :class:`~topk_plugin.PlacementSpec` or the path of its file (a
            ``pathlib.Path``, or a ``str`` ending in ``.json``): it then gives
            the layers, K, op and options (pass only ``method``).
        k: fraction in (0, 1] or int count, for layers without their own.
        method: ``"module"`` (visible ``TopK`` children) or ``"hook"``.
        op: ``"topk"`` (``TopK``), ``"random"`` (``RandomK``: K random
            positions per channel, the control for Top-K; same K rule) or
            ``"stats-norm"`` (``ChannelStatsNorm``: each image's per-channel mean
            and standard deviation moved toward dataset constants by ``strength``;
            no K. Run :func:`topk_plugin.calibrate` before use, or give each layer
            its ``mean`` and ``std`` in a dict / placement spec).
        strength: for ``op="stats-norm"`` only: in (0, 1], for layers without
            their own (a layers dict then maps to strengths, or to dicts of
            ``ChannelStatsNorm`` options).
        seed: for ``op="random"``; each layer draws from its own stream,
            fixed by ``seed`` and the layer name.
        ties: ``"exact"`` or ``"threshold"``, as in
            :func:`topk_plugin.functional.spatial_topk` (not for ``op="random"``).
        mode: ``"keep"`` or ``"mean"`` (mean replacement), as in ``spatial_topk``.
        rank_by: ``"abs"`` or ``"value"``, as in ``spatial_topk`` (not for ``op="random"``).
        invert: select every entry except the Top-K ones, as in ``spatial_topk``.
        channel_dim: the channel axis, 1 or -1 (``(n, tokens, c)``), as in ``spatial_topk``.
        fill: ``"zero"`` (the removed entries become 0: the paper),
            ``"image-mean"`` (they become their per-image mean) or ``"shift"``
            (zero, then one calibrated constant per channel is added to the whole
            channel, kept entries included; run :func:`topk_plugin.calibrate`
            before use, or give each layer its ``shift`` in a dict / placement
            spec). ``op="topk"`` only; ``op="stats-norm"`` takes none of
            ``ties``, ``mode``, ``rank_by``, ``invert``, ``fill``.

    Returns ``model`` itself. Undo with :func:`unsparsify`. A module reached
    several times in one forward (e.g. a shared ReLU) is sparsified at each call.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not one of {', '.join(map(repr, METHODS))}")
    if op not in OPS:
        raise ValueError(f"op={op!r} is not one of {', '.join(map(repr, OPS))}")
    if _is_spec(model, layers):
        spec = load_placement(layers)
        given = dict(k=k, op=op, strength=strength, seed=seed, ties=ties, mode=mode, rank_by=rank_by, invert=invert, channel_dim=channel_dim,
                     fill=fill)
        defaults = inspect.signature(sparsify).parameters
        clash = [key for key, value in given.items() if value != defaults[key].default]
        if clash:
            raise ValueError(f"the placement spec sets the layers, K and options; do not also pass {', '.join(clash)} "
                             "(edit the spec, or pass the layers and k directly)")
        return sparsify(model, method=method, **spec.sparsify_kwargs())
    options = dict(ties=ties, mode=mode, rank_by=rank_by, invert=invert, channel_dim=channel_dim, fill=fill)
    if op == "stats-norm":
        if k is not None:
            raise ValueError(f"op='stats-norm' has no K (it selects nothing): pass strength={k!r} instead of k")
        chosen = resolve_layers(model, layers, strength, what="strength")
    else:
        if strength is not None:
            raise ValueError(f"strength= is only used with op='stats-norm', not op={op!r} (whose parameter is k)")
        chosen = resolve_layers(model, layers, k)
    modules = dict(model.named_modules())
    already = sparsified_layers(model)
    topks = {}
    for name, layer_k in chosen.items():  # validate everything before touching the model
        if name in already:
            raise ValueError(f"layer {name!r} is already sparsified ({already[name]!r}); call unsparsify first")
        if method == "module" and CHILD_NAME in modules[name]._modules:
            raise ValueError(f"layer {name!r} already has a child named {CHILD_NAME!r}; use method='hook'")
        topks[name] = _make_op(name, layer_k, op, options, seed)
    for name, topk in topks.items():
        module = modules[name]
        if method == "module":
            module.add_module(CHILD_NAME, topk)
            module.__class__ = _sparse_class(type(module))
        else:
            module.register_forward_hook(TopKHook(topk))
    return model


def unsparsify(model: nn.Module, layers=None) -> nn.Module:
    """Remove Top-K from ``layers`` (default: every sparsified layer), in place.

    The model is then the original one: same classes, children, hooks and
    outputs bit for bit.
    """
    present = sparsified_layers(model)
    if layers is None:
        names = list(present)
    else:
        selectors = [layers] if isinstance(layers, (str, type)) else list(layers)
        names = []
        for selector in selectors:
            matched = [n for n in resolve_layers(model, [selector], k=1) if n in present]
            if not matched:
                raise ValueError(
                    f"{selector!r} selects no sparsified layer; sparsified layers: {list(present)}"
                )
            names += matched
    modules = dict(model.named_modules())
    for name in dict.fromkeys(names):
        module = modules[name]
        if is_swapped(module):
            module.__class__ = module._topk_plugin_base
            del module._modules[CHILD_NAME]
        for key in hook_keys(module):
            del module._forward_hooks[key]
    return model


@contextlib.contextmanager
def sparsified(model: nn.Module, layers, k=None, *, method: str = "module", **options):
    """Context manager: Top-K on ``layers`` inside the block, the dense model after.

    Same arguments and defaults as :func:`sparsify`. On exit it removes the ops
    it added that are still attached (the block may have removed some), and an
    error raised in the block comes out unchanged.

    >>> with sparsified(model, ["features.2", "features.5"], 0.1):
    ...     logits = model(images)
    """
    before = sparsified_layers(model)
    sparsify(model, layers, k, method=method, **options)
    added = {name: op for name, op in sparsified_layers(model).items() if before.get(name) is not op}
    try:
        yield model
    finally:
        now = sparsified_layers(model)
        still = [name for name, op in added.items() if now.get(name) is op]
        if still:
            unsparsify(model, still)


@contextlib.contextmanager
def attached(model: nn.Module, ops: Mapping[str, nn.Module]):
    """Context manager: run the given op modules (``{layer name: TopK/RandomK}``) after
    their layers, as hooks, and remove them after.

    Unlike :func:`sparsified` the modules are used as they are, not rebuilt, so a
    ``RandomK`` keeps drawing from its stream across blocks (a fresh selection per
    batch, as in one long forward pass).
    """
    modules = dict(model.named_modules())
    unknown = [name for name in ops if name not in modules]
    if unknown:
        resolve_layers(model, unknown, 1)  # raises the usual error with close matches
    handles = [modules[name].register_forward_hook(TopKHook(op)) for name, op in ops.items()]
    try:
        yield model
    finally:
        for handle in handles:
            handle.remove()
