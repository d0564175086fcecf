"""Run a network once up to each candidate layer and reuse that prefix for every placement there.

Why: a placement's first sparsified layer L leaves everything before L
unchanged, so the activations at L (the dense prefix) are the same for every
placement that starts at L. ``PrefixRunner`` traces the model with torch.fx,
keeping the candidate layers as graph nodes (every other module is a leaf, so
only the containers' own Python is traced), and walks the graph once per
batch: at each candidate it exposes the values live across that point, and
``tail`` finishes the forward from there with a replaced activation. Hooks
that ``sparsify`` puts on later layers fire in the tail, because the traced
graph calls the model's own module objects.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.fx
from torch import nn

__all__ = ["PrefixRunner", "TraceError"]


class TraceError(RuntimeError):
    """The model cannot be traced with the candidates as nodes; search without the cache."""


class _Tracer(torch.fx.Tracer):
    """Traces only through the ancestors of the candidate layers; everything else is a leaf."""

    def __init__(self, candidates: list[str]):
        super().__init__()
        self.ancestors = {""}
        for name in candidates:
            parts = name.split(".")
            self.ancestors.update(".".join(parts[:i]) for i in range(1, len(parts)))
        self.candidates = set(candidates)

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return qualname not in self.ancestors


class PrefixRunner:
    """Walk ``model``'s graph batch by batch, stopping at each candidate layer (module order)."""

    def __init__(self, model: nn.Module, candidates: list[str]):
        tracer = _Tracer(candidates)
        try:
            graph = tracer.trace(model)
        except Exception as err:  # noqa: BLE001 - any tracing failure means: no cache
            raise TraceError(f"torch.fx cannot trace {type(model).__name__} at these layers ({err})") from err
        self.module = torch.fx.GraphModule(model, graph)  # shares the model's submodules
        self.nodes = list(graph.nodes)
        position = {node: i for i, node in enumerate(self.nodes)}
        at = {}
        for node in self.nodes:
            if node.op == "call_module" and node.target in tracer.candidates:
                if node.target in at:
                    raise TraceError(f"layer {node.target!r} runs more than once per forward; search without the cache")
                at[node.target] = node
        missing = [c for c in candidates if c not in at]
        if missing:
            raise TraceError(f"layers {missing} are not called as modules in {type(model).__name__}'s forward")
        self.cuts = sorted(candidates, key=lambda c: position[at[c]])
        self._node = at
        # values defined at or before node i that a later node reads: what crosses the cut
        last_use = {node: max((position[u] for u in node.users), default=position[node]) for node in self.nodes}
        self._live = {
            c: [n for n in self.nodes[: position[at[c]] + 1] if last_use[n] > position[at[c]]] for c in candidates
        }
        self._position = position

    def _run(self, env: dict, start: int, stop: int):
        interpreter = torch.fx.Interpreter(self.module, garbage_collect_values=False)
        interpreter.env = env
        result = None
        for node in self.nodes[start:stop]:
            result = interpreter.run_node(node)
            env[node] = result
            if node.op == "output":
                return result
        return result

    def walk(self, x: torch.Tensor) -> Iterator[tuple[str, dict]]:
        """Yield ``(layer, state)`` at each cut in order, then ``(None, logits)`` of the dense model.

        ``state`` maps graph nodes to the values live across the cut; pass it to
        :meth:`tail` before advancing the walk (the walk reuses its tensors).
        """
        env: dict = {self.nodes[0]: x}  # the placeholder
        start = 1
        for cut in self.cuts:
            stop = self._position[self._node[cut]] + 1
            self._run(env, start, stop)
            env = {n: env[n] for n in self._live[cut]}
            yield cut, env
            start = stop
        yield None, self._run(env, start, len(self.nodes))

    def value(self, layer: str, state: dict) -> torch.Tensor:
        """``layer``'s (dense) output in ``state``."""
        return state[self._node[layer]]

    def tail(self, layer: str, state: dict, replacement: torch.Tensor) -> torch.Tensor:
        """The model's output when ``layer``'s output is ``replacement`` (other live values as in ``state``).

        Values are copied first: in-place layers in the tail (``ReLU(inplace=True)``)
        must not change the cached prefix that the next placement starts from.
        """
        node = self._node[layer]
        env = {n: (v.clone() if isinstance(v, torch.Tensor) else v) for n, v in state.items() if n is not node}
        env[node] = replacement.clone() if any(replacement is v for v in state.values()) else replacement
        return self._run(env, self._position[node] + 1, len(self.nodes))
