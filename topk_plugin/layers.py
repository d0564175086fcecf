"""Finding the layers of a model that Top-K can follow, by name, pattern or type."""
from __future__ import annotations

import difflib
import fnmatch
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .attachment import sparsified_layers
from .modules import ChannelStatsNorm, RandomK, TopK

__all__ = ["LayerInfo", "UnknownLayerError", "list_layers", "resolve_layers", "format_table", "forward_with_hooks"]

_GLOB_CHARS = set("*?[")


class UnknownLayerError(KeyError, ValueError):
    """A layer name or pattern matches no module of the model."""

    def __str__(self) -> str:  # KeyError would print the message with quotes
        return str(self.args[0])


@dataclass(frozen=True)
class LayerInfo:
    """One targetable module: its qualified name, class, and output shape if traced."""

    name: str
    type: str
    output_shape: tuple | None = None
    output_type: str | None = None
    sparsified: bool = False


def _named_targets(model: nn.Module) -> dict[str, nn.Module]:
    """Every named submodule except the root and our own op modules."""
    return {
        name: module
        for name, module in model.named_modules()
        if name and not isinstance(module, (TopK, RandomK, ChannelStatsNorm))
    }


def _close_matches(name: str, names: list[str]) -> list[str]:
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    if not close:  # e.g. 'conv1' for 'features.conv1': match the last component
        close = [n for n in names if n.rsplit(".", 1)[-1] == name.rsplit(".", 1)[-1]][:5]
    return close


def _unknown(selector, names: list[str], model: nn.Module) -> UnknownLayerError:
    what = f"layer {selector!r}" if isinstance(selector, str) else f"module type {selector.__name__}"
    msg = f"{what} matches no module of {type(model).__name__}"
    if isinstance(selector, str):
        close = _close_matches(selector, names)
        if close:
            msg += "; closest names: " + ", ".join(map(repr, close))
    msg += ". List them with topk_plugin.list_layers(model)."
    return UnknownLayerError(msg)


def _match(selector, targets: dict[str, nn.Module], model: nn.Module) -> list[str]:
    names = list(targets)
    if isinstance(selector, type) and issubclass(selector, nn.Module):
        found = [n for n, m in targets.items() if isinstance(m, selector)]
    elif isinstance(selector, str):
        if selector in targets:
            return [selector]
        found = [n for n in names if fnmatch.fnmatchcase(n, selector)] if _GLOB_CHARS & set(selector) else []
    else:
        raise TypeError(
            f"a layer selector must be a module name, a glob pattern or an nn.Module "
            f"subclass, got {selector!r} of type {type(selector).__name__}"
        )
    if not found:
        raise _unknown(selector, names, model)
    return found


def resolve_layers(model: nn.Module, layers, k=None, *, what: str = "k") -> dict[str, object]:
    """Map ``layers`` to ``{module name: k}`` in the model's module order.

    ``layers`` is a name, a glob pattern (``"features.*"``), an ``nn.Module``
    subclass, a list mixing those, or a mapping from any of those to its own k
    (a value of ``None`` takes the default ``k``). ``what`` names the value in
    errors (``"strength"`` for ``op="stats-norm"``).
    """
    targets = _named_targets(model)
    if isinstance(layers, Mapping):
        items = list(layers.items())
    elif isinstance(layers, (str, type)):
        items = [(layers, None)]
    elif isinstance(layers, Iterable):
        items = [(selector, None) for selector in layers]
    else:
        raise TypeError(f"layers must be a name, pattern, module type, list or dict, got {type(layers).__name__}")
    if not items:
        raise ValueError("layers is empty: name at least one layer (see topk_plugin.list_layers(model))")
    chosen: dict[str, object] = {}
    for selector, layer_k in items:
        layer_k = k if layer_k is None else layer_k
        if layer_k is None:
            raise ValueError(f"no {what} for layer {selector!r}: pass {what}= or give it a value in the layers dict")
        if not isinstance(layer_k, (numbers.Real, Mapping)):
            raise TypeError(f"{what} for layer {selector!r} must be a number, got {layer_k!r}")
        for name in _match(selector, targets, model):
            chosen[name] = layer_k
    order = {name: i for i, name in enumerate(targets)}
    return dict(sorted(chosen.items(), key=lambda item: order[item[0]]))


def _describe(output) -> tuple[tuple | None, str]:
    if isinstance(output, torch.Tensor):
        return tuple(output.shape), "Tensor"
    return None, type(output).__name__


def forward_with_hooks(model: nn.Module, example_input, modules: dict[str, nn.Module], record) -> None:
    """One ``torch.no_grad`` forward of ``example_input`` (a tensor or a tuple of
    inputs) calling ``record(name, output)`` after each call of ``modules[name]``;
    the hooks are gone afterwards, also on error."""
    handles = [
        module.register_forward_hook(lambda _m, _i, output, name=name: record(name, output))
        for name, module in modules.items()
    ]
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    try:
        with torch.no_grad():
            model(*args)
    finally:
        for handle in handles:
            handle.remove()


def list_layers(model: nn.Module, example_input=None, *, leaves_only: bool = False) -> list[LayerInfo]:
    """The modules Top-K can follow, with output shapes when an input is given.

    ``example_input`` (a tensor, or a tuple of positional inputs) is run once
    under ``torch.no_grad`` to record each module's output shape; a module
    called several times reports its last call.
    """
    targets = _named_targets(model)
    if leaves_only:
        targets = {n: m for n, m in targets.items() if not any(True for _ in m.children())}
    sparse = sparsified_layers(model)
    outputs: dict[str, tuple] = {}
    if example_input is not None:
        def record(name, output):
            outputs[name] = _describe(output)

        forward_with_hooks(model, example_input, targets, record)
    rows = []
    for name, module in targets.items():
        shape, out_type = outputs.get(name, (None, None))
        rows.append(LayerInfo(name, type(module).__name__, shape, out_type, name in sparse))
    return rows


def format_table(rows: list, columns: list[str] | None = None) -> str:
    """Plain-text table of dataclass rows (for printing layer lists and summaries)."""
    if not rows:
        return "(no rows)"
    columns = columns or list(rows[0].__dataclass_fields__)
    cells = [[("" if getattr(r, c) is None else str(getattr(r, c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = lambda values: "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()
    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, cells)])
