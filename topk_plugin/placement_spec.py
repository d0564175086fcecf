"""Placement spec files: where a sparsity op goes in a model and with which K, as data.

Why a file: a placement found by ``topk-plugin search-placement`` (or written by
hand) should be reusable without code, and say where it came from. The JSON:

.. code-block:: json

    {"format": "topk-plugin.placement", "version": 1,
     "model": "squeezenet1_1", "op": "topk",
     "layers": {"features.6": 0.1},
     "options": {"mode": "keep"},
     "provenance": {"shape_bias": 0.41, "imagenet_top1": 0.55, "...": "..."}}

``layers`` maps module names to K (a fraction or an int count); ``options`` are
``sparsify`` keywords (``ties``, ``mode``, ``rank_by``, ``channel_dim``,
``seed``, ``fill``); with ``"fill": "shift"``, ``shift`` maps layer names to
their calibrated per-channel shift (a list of floats, written so that it reads
back bit for bit; layers without one are calibrated after loading, see
:func:`topk_plugin.calibrate`); ``provenance`` is free-form.

With ``"op": "stats-norm"`` (the per-image channel-statistics control, no K),
``layers`` maps names to ``{"strength": a}`` (and ``"eps"`` if not the default),
``options`` may hold only ``channel_dim``, and ``stats`` maps layer names to their
calibrated dataset constants ``{"mean": [...], "std": [...]}`` (bit for bit, as the shift). ``sparsify(model, spec)`` and
``create_model(base, placement=spec)`` accept a ``PlacementSpec`` or the path of
its file.
"""
from __future__ import annotations

import json
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path

from ._io import atomic_write_json
from .attachment import OPS, sparsified_layers
from .functional import validate_k
from .modules import ChannelStatsNorm, TopK
from .stats_norm import STATS_EPS, validate_eps, validate_strength

__all__ = ["PlacementSpec", "load_placement", "FORMAT", "SPEC_OPTIONS"]

FORMAT = "topk-plugin.placement"
VERSION = 1
SPEC_OPTIONS = ("ties", "mode", "rank_by", "invert", "channel_dim", "seed", "fill")
STATS_NORM_OPTIONS = ("channel_dim",)
STATS_NORM_LAYER_KEYS = ("strength", "eps")


def _check_stats_norm_layer(name: str, value) -> None:
    if not isinstance(value, dict) or "strength" not in value or set(value) - set(STATS_NORM_LAYER_KEYS):
        raise ValueError(f"placement spec layer {name!r} of op='stats-norm' must be {{\"strength\": a}} "
                         f"(optionally with \"eps\"), got {value!r}")
    validate_strength(value["strength"])
    if "eps" in value:
        validate_eps(value["eps"])


def _numbers(values) -> bool:
    return isinstance(values, list) and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values)


@dataclass(frozen=True)
class PlacementSpec:
    """Layers (module name -> K), the op, and its ``sparsify`` options."""

    layers: dict
    op: str = "topk"
    options: dict = field(default_factory=dict)
    model: str | None = None
    provenance: dict = field(default_factory=dict)
    shift: dict = field(default_factory=dict)  # layer -> [float per channel], for fill="shift"
    stats: dict = field(default_factory=dict)  # layer -> {"mean": [...], "std": [...]}, for op="stats-norm"

    def __post_init__(self):
        if not isinstance(self.layers, dict) or not self.layers:
            raise ValueError("a placement spec needs 'layers': a non-empty mapping of module name -> k")
        if self.op not in OPS:
            raise ValueError(f"placement spec op={self.op!r} is not one of {', '.join(map(repr, OPS))}")
        for name, k in self.layers.items():
            if not isinstance(name, str):
                raise ValueError(f"placement spec layer names must be strings, got {name!r}")
            if self.op == "stats-norm":
                _check_stats_norm_layer(name, k)
            else:
                validate_k(k)
        allowed = STATS_NORM_OPTIONS if self.op == "stats-norm" else SPEC_OPTIONS
        unknown = sorted(set(self.options) - set(allowed))
        if unknown:
            raise ValueError(f"placement spec options {unknown} are unknown for op={self.op!r}; allowed: "
                             f"{', '.join(allowed)}")
        self._check_stats()
        if self.shift and self.options.get("fill") != "shift":
            raise ValueError("placement spec has 'shift' values but its options do not set \"fill\": \"shift\"")
        for name, values in self.shift.items():
            if name not in self.layers:
                raise ValueError(f"placement spec has a shift for {name!r}, which is not in layers {list(self.layers)}")
            if not _numbers(values):
                raise ValueError(f"placement spec shift of {name!r} must be a list of numbers (one per channel)")

    def _check_stats(self) -> None:
        if self.stats and self.op != "stats-norm":
            raise ValueError(f"placement spec has 'stats' values but its op is {self.op!r}, not 'stats-norm'")
        for name, values in self.stats.items():
            if name not in self.layers:
                raise ValueError(f"placement spec has stats for {name!r}, which is not in layers {list(self.layers)}")
            if (not isinstance(values, dict) or set(values) != {"mean", "std"} or not _numbers(values["mean"])
                    or not _numbers(values["std"]) or len(values["mean"]) != len(values["std"])):
                raise ValueError(f"placement spec stats of {name!r} must be {{\"mean\": [...], \"std\": [...]}}, "
                                 "two lists of numbers of the same length (one per channel)")

    @classmethod
    def from_model(cls, model, *, model_name: str | None = None, provenance: dict | None = None) -> PlacementSpec:
        """The Top-K (or stats-norm) layers of a sparsified ``model`` and their calibrated constants as a spec."""
        ops = sparsified_layers(model)
        kinds = {type(op) for op in ops.values()}
        if len(kinds) != 1 or not kinds <= {TopK, ChannelStatsNorm}:
            raise ValueError("PlacementSpec.from_model needs a model sparsified with one op, op='topk' or "
                             f"op='stats-norm' (found {sorted(k.__name__ for k in kinds) or 'no sparsified layer'})")
        if kinds == {ChannelStatsNorm}:
            return cls._from_stats_norm(ops, model_name, provenance)
        defaults = TopK(1).options()
        options = [{key: value for key, value in op.options().items() if key not in ("k", "shift")
                    and value != defaults[key]} for op in ops.values()]
        if any(o != options[0] for o in options):
            raise ValueError(f"the layers' options differ ({options}); a placement spec holds one set of options")
        shift = {name: op.shift.tolist() for name, op in ops.items() if getattr(op, "shift", None) is not None}
        return cls(layers={name: op.k for name, op in ops.items()}, op="topk", options=options[0],
                   model=model_name, provenance=dict(provenance or {}), shift=shift)

    @classmethod
    def _from_stats_norm(cls, ops: dict, model_name, provenance) -> PlacementSpec:
        channel_dims = {op.channel_dim for op in ops.values()}
        if len(channel_dims) != 1:
            raise ValueError(f"the layers' channel_dim differ ({sorted(channel_dims)}); a placement spec holds one")
        layers = {name: {"strength": op.strength, **({} if op.eps == STATS_EPS else {"eps": op.eps})}
                  for name, op in ops.items()}
        stats = {name: {"mean": op.mean.tolist(), "std": op.std.tolist()} for name, op in ops.items() if op.calibrated}
        options = {} if channel_dims == {1} else {"channel_dim": channel_dims.pop()}
        return cls(layers=layers, op="stats-norm", options=options, model=model_name,
                   provenance=dict(provenance or {}), stats=stats)

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "model": self.model,
            "op": self.op,
            "layers": dict(self.layers),
            "options": dict(self.options),
            "provenance": dict(self.provenance),
            **({"shift": dict(self.shift)} if self.shift else {}),
            **({"stats": dict(self.stats)} if self.stats else {}),
        }

    @classmethod
    def from_json(cls, data: dict, *, source: str = "placement spec") -> PlacementSpec:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{source} is not a topk-plugin placement spec (expected \"format\": \"{FORMAT}\")")
        if data.get("version") != VERSION:
            raise ValueError(f"{source} has version {data.get('version')!r}; this topk-plugin reads version {VERSION}")
        layers = {
            name: (int(k) if isinstance(k, numbers.Integral) and not isinstance(k, bool)
                   else float(k) if isinstance(k, numbers.Real) and not isinstance(k, bool) else k)
            for name, k in (data.get("layers") or {}).items()
        }
        try:
            return cls(layers=layers, op=data.get("op", "topk"), options=dict(data.get("options") or {}),
                       model=data.get("model"), provenance=dict(data.get("provenance") or {}),
                       shift=dict(data.get("shift") or {}), stats=dict(data.get("stats") or {}))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: {err}") from err

    def save(self, path) -> Path:
        """Write the spec as JSON, atomically; returns the path."""
        path = Path(path)
        atomic_write_json(path, self.to_json())
        return path

    def sparsify_kwargs(self) -> dict:
        """``layers`` (with their shifts or stats), ``op`` and options, as keywords for :func:`topk_plugin.sparsify`."""
        if self.op == "stats-norm":
            layers = {name: {**value, **self.stats.get(name, {})} for name, value in self.layers.items()}
            return dict(layers=layers, op=self.op, **self.options)
        layers = {name: {"k": k, "shift": self.shift[name]} if name in self.shift else k
                  for name, k in self.layers.items()}
        return dict(layers=layers, op=self.op, **self.options)


def load_placement(spec) -> PlacementSpec:
    """A ``PlacementSpec`` from itself, a path, or a JSON dict; clear errors name the file."""
    if isinstance(spec, PlacementSpec):
        return spec
    if isinstance(spec, dict):
        return PlacementSpec.from_json(spec)
    if isinstance(spec, (str, os.PathLike)):
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"placement spec file {str(path)!r} does not exist")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"placement spec file {str(path)!r} is not valid JSON: {err}") from err
        return PlacementSpec.from_json(data, source=f"placement spec file {str(path)!r}")
    raise TypeError(f"expected a PlacementSpec, a path or a dict, got {type(spec).__name__}")
