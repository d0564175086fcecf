"""``kernel_status()``: what the CPU selection runs on this machine, in words.

Why: the speed of ``spatial_topk`` on CPU depends on the CPU, the compiler and the
measured backend choice (``_select_tune``); a user comparing timings, or reporting
one, needs all three in one place.
"""
from __future__ import annotations

from . import _cpu, _select_build, _select_ops, _select_tune

__all__ = ["kernel_status"]


def kernel_status() -> str:
    """CPU model and vector ISA, both kernel builds, the backend, and the path chosen
    for each row class (measuring the choice if this machine has none cached)."""
    lines = [
        f"cpu: {_cpu.describe()}",
        f"native build: {_select_build.status('native')}",
        f"portable build: {_select_build.status('portable')}",
        f"backend: {_select_ops.get_backend()} (TOPK_PLUGIN_BACKEND: auto, torch, kernel, portable)",
    ]
    if _select_ops.get_backend() == "auto":
        d = _select_tune.decision()
        lines.append(f"choice ({d['source']}{', ' + d['path'] if d.get('path') else ''}):")
        for row_cls, path in d["choice"].items():
            scores = d.get("scores", {}).get(row_cls, {})
            detail = ", ".join(f"{name} {score:.2f}" for name, score in scores.items())
            lines.append(f"  {row_cls:<9} -> {path:<8}" + (f" (time / fastest: {detail})" if detail else ""))
    return "\n".join(lines)
