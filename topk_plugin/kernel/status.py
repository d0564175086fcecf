"""``kernel_status()`` and ``tune()``: what the CPU selection runs on this machine, and choosing it ahead of time.

Why: the speed of ``spatial_topk`` on CPU depends on the CPU, the compiler and the
measured backend choice (:mod:`.choice`); a user comparing timings, or reporting
one, needs all three in one place. The first CPU call of a process on a new machine
compiles the kernel and times the paths for its row class (seconds, with a notice);
``tune()`` does all of it before a job starts.
"""
from __future__ import annotations

from . import build, choice, cpu, dispatch

__all__ = ["kernel_status", "tune"]


def kernel_status() -> str:
    """CPU model and vector ISA, both kernel builds, the backend, and the path chosen
    for each row class (measuring the choice if this machine has none cached)."""
    lines = [
        f"cpu: {cpu.describe()}",
        f"native build: {build.status('native')}",
        f"portable build: {build.status('portable')}",
        f"backend: {dispatch.get_backend()} (TOPK_PLUGIN_BACKEND: auto, torch, kernel, portable)",
    ]
    if dispatch.get_backend() == "auto":
        d = choice.decision()
        lines.append(f"choice ({d['source']}{', ' + d['path'] if d.get('path') else ''}):")
        for row_cls, path in d["choice"].items():
            scores = d.get("scores", {}).get(row_cls, {})
            detail = ", ".join(f"{name} {score:.2f}" for name, score in scores.items())
            entry = d.get("classes", {}).get(row_cls, {})
            cut = " partial: the time budget ran out; `topk-plugin tune` completes it" if row_cls in d.get("partial", []) else ""
            took = f", {entry['seconds']:.1f} s" if "seconds" in entry else ""
            lines.append(f"  {row_cls:<9} -> {path:<8}" + (f" (time / fastest: {detail}{took}){cut}" if detail else ""))
    return "\n".join(lines)


def tune(row_classes=None) -> dict:
    """Compile the kernel and time the selection paths of ``row_classes`` (default: all six,
    e.g. ``["short-32", "long-32"]``) for this machine and thread count now, with no time
    budget, replacing what is cached. Run it before a job (``topk-plugin tune``) so the first
    forward pass does not pay for it. Returns the decisions (see :func:`.choice.decision`)."""
    return choice.tune(row_classes)
