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
:func:`topk_plugin.calibrate`); ``provenance`` is free-form. ``sparsify(model, spec)`` and
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
from .modules import TopK

__all__ = ["PlacementSpec", "load_placement", "FORMAT", "SPEC_OPTIONS"]

FORMAT = "topk-plugin.placement"
VERSION = 1
SPEC_OPTIONS = ("ties", "mode", "rank_by", "invert", "channel_dim", "seed", "fill")


@dataclass(frozen=True)
class PlacementSpec:
    """Layers (module name -> K), the op, and its ``sparsify`` options."""

    layers: dict
    op: str = "topk"
    options: dict = field(default_factory=dict)
    model: str | None = None
    provenance: dict = field(default_factory=dict)
    shift: dict = field(default_factory=dict)  # layer -> [float per channel], for fill="shift"

    def __post_init__(self):
        if not isinstance(self.layers, dict) or not self.layers:
            raise ValueError("a placement spec needs 'layers': a non-empty mapping of module name -> k")
        for name, k in self.layers.items():
            if not isinstance(name, str):
                raise ValueError(f"placement spec layer names must be strings, got {name!r}")
            validate_k(k)
        if self.op not in OPS:
            raise ValueError(f"placement spec op={self.op!r} is not one of {', '.join(map(repr, OPS))}")
        unknown = sorted(set(self.options) - set(SPEC_OPTIONS))
        if unknown:
            raise ValueError(f"placement spec options {unknown} are unknown; allowed: {', '.join(SPEC_OPTIONS)}")
        if self.shift and self.options.get("fill") != "shift":
            raise ValueError("placement spec has 'shift' values but its options do not set \"fill\": \"shift\"")
        for name, values in self.shift.items():
            if name not in self.layers:
                raise ValueError(f"placement spec has a shift for {name!r}, which is not in layers {list(self.layers)}")
            if not isinstance(values, list) or not all(isinstance(v, numbers.Real) for v in values):
                raise ValueError(f"placement spec shift of {name!r} must be a list of numbers (one per channel)")

    @classmethod
    def from_model(cls, model, *, model_name: str | None = None, provenance: dict | None = None) -> PlacementSpec:
        """The Top-K layers of a sparsified ``model`` (and their calibrated shifts) as a spec."""
        ops = sparsified_layers(model)
        if not ops or not all(isinstance(op, TopK) for op in ops.values()):
            raise ValueError("PlacementSpec.from_model needs a model sparsified with op='topk' "
                             f"(found {sorted({type(op).__name__ for op in ops.values()}) or 'no sparsified layer'})")
        defaults = TopK(1).options()
        options = [{key: value for key, value in op.options().items() if key not in ("k", "shift")
                    and value != defaults[key]} for op in ops.values()]
        if any(o != options[0] for o in options):
            raise ValueError(f"the layers' options differ ({options}); a placement spec holds one set of options")
        shift = {name: op.shift.tolist() for name, op in ops.items() if getattr(op, "shift", None) is not None}
        return cls(layers={name: op.k for name, op in ops.items()}, op="topk", options=options[0],
                   model=model_name, provenance=dict(provenance or {}), shift=shift)

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
        }

    @classmethod
    def from_json(cls, data: dict, *, source: str = "placement spec") -> PlacementSpec:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{source} is not a topk-plugin placement spec (expected \"format\": \"{FORMAT}\")")
        if data.get("version") != VERSION:
            raise ValueError(f"{source} has version {data.get('version')!r}; this topk-plugin reads version {VERSION}")
        layers = {
            name: (int(k) if isinstance(k, numbers.Integral) else float(k))
            for name, k in (data.get("layers") or {}).items()
        }
        try:
            return cls(layers=layers, op=data.get("op", "topk"), options=dict(data.get("options") or {}),
                       model=data.get("model"), provenance=dict(data.get("provenance") or {}),
                       shift=dict(data.get("shift") or {}))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: {err}") from err

    def save(self, path) -> Path:
        """Write the spec as JSON, atomically; returns the path."""
        path = Path(path)
        atomic_write_json(path, self.to_json())
        return path

    def sparsify_kwargs(self) -> dict:
        """``layers`` (with their shifts), ``op`` and options, as keywords for :func:`topk_plugin.sparsify`."""
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
