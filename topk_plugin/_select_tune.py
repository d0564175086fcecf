"""Which selection path serves each row class on this machine: measured once, cached on disk.

Why: the same C source is fast on one CPU and slow on another (vector width, ports,
caches), and the pure-PyTorch path or the plain-C build can win where the vector
code does not. So the ``"auto"`` backend does not guess: the first time a CPU tensor
reaches the kernel ops, :func:`decision` times the candidates

* ``"native"``: the ``-march=native`` build with vector extensions,
* ``"portable"``: the ``-DTOPK_PORTABLE`` build (plain C),
* ``"torch"``: the pure-PyTorch selection (``kthvalue``),

on a few representative tensors per row class (:data:`CASES`: two shapes, post-ReLU and
signed inputs, K = 10% and 50%, interleaved, best of :data:`REPEATS`), and picks for each
class the candidate with the lowest geometric mean time relative to the fastest one.
All candidates give the same bits, so the choice only changes speed.

Row classes: ``short`` rows (at most :data:`SHORT_MAX` positions: the C kernel's
vector-lane path) or ``long`` ones, times the key width (16 bits for float16/bfloat16,
32 for float32, 64 for float64).

The decision is written atomically to ``<cache>/kernels/backend_choice_<digest>.json``,
the digest covering both libraries' file names (which hash the sources, flags and
compiler), the CPU's flags, the thread count (``torch.get_num_threads()``: the paths
scale differently), the torch version and :data:`VERSION`; a lock file keeps concurrent
processes (pytest-xdist workers) from measuring at once. Another CPU flag set, a new
compiler or source, another thread count or another torch re-measures; the same
setting reads the file (a process keeps its decision once made). ``TOPK_PLUGIN_BACKEND``
(``torch``, ``kernel``, ``portable``) bypasses all of this; :func:`remeasure` forgets the
decision.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from . import _cpu, _select_build
from ._io import atomic_write_json

__all__ = ["CANDIDATES", "CASES", "SHORT_MAX", "row_class", "decision", "choice", "measure", "pick", "pinned_runner",
           "remeasure"]

VERSION = 1  # bump when CASES, REPEATS or the scoring change: old decisions are then ignored
CANDIDATES = ("native", "portable", "torch")
SHORT_MAX = 200  # the C source's LANES_MAX: rows up to this long take the short-row code
REPEATS = 5
KS = (0.1, 0.5)
_SHAPES = {"short": ((8, 128, 7, 7), (4, 64, 14, 14)), "long": ((2, 32, 56, 56), (4, 64, 28, 28))}
_DTYPES = {16: torch.float16, 32: torch.float32, 64: torch.float64}
CASES: dict[str, tuple[tuple[tuple[int, ...], ...], torch.dtype]] = {
    f"{length}-{bits}": (_SHAPES[length], dtype) for length in _SHAPES for bits, dtype in _DTYPES.items()
}

_TIMED_SOURCES = ("functional.py", "_select_ops.py")  # their code is timed too: part of the key
_lock = threading.Lock()
_state: dict = {}


def row_class(positions: int, dtype: torch.dtype) -> str:
    """``"short-32"``, ``"long-16"``, ...: the unit of the backend choice."""
    bits = 8 * dtype.itemsize
    return f"{'short' if positions <= SHORT_MAX else 'long'}-{bits}"


def _cases(row_cls: str):
    """The inputs timed for one row class: (tensor, k) pairs, post-ReLU and signed."""
    shapes, dtype = CASES[row_cls]
    g = torch.Generator().manual_seed(0)
    for shape in shapes:
        signed = torch.randn(shape, generator=g, device="cpu").to(dtype)
        for x in (signed.relu(), signed):
            for k in KS:
                yield x, k


def measure(runners: dict[str, Callable], cases, repeats: int = REPEATS,
            clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Geometric mean over ``cases`` of each runner's time relative to the fastest runner on
    that case (1.0 = fastest everywhere). Runners are called interleaved, best of ``repeats``
    after one warm-up call each, so load changes on the machine hit all alike; the order is
    shuffled (seeded) between repeats, because a call right after another one's large
    allocations can pay page faults for them (measured: 0.2 ms on a 1.6 MB output, a third
    of the selection itself, in a fixed order)."""
    shuffle = random.Random(0).shuffle
    logs = {name: 0.0 for name in runners}
    count = 0
    for x, k in cases:
        best = {}
        for name, run in runners.items():
            run(x, k)  # warm-up (first-touch allocations, lazy builds)
            best[name] = math.inf
        order = list(runners)
        for _ in range(repeats):
            shuffle(order)  # no runner always follows the same other one (see above)
            for name in order:
                start = clock()
                runners[name](x, k)
                best[name] = min(best[name], clock() - start)
        fastest = max(min(best.values()), 1e-9)
        for name in runners:
            logs[name] += math.log(max(best[name], 1e-9) / fastest)
        count += 1
    return {name: math.exp(total / max(count, 1)) for name, total in logs.items()}


def pick(scores: dict[str, float]) -> str:
    """The candidate with the lowest score; ties go to the earlier one in :data:`CANDIDATES`."""
    return min(scores, key=lambda name: (scores[name], CANDIDATES.index(name)))


def pinned_runner(target) -> Callable:
    """``spatial_topk(x, k)`` on one path whatever the backend: ``target`` is a kernel
    library or ``"torch"`` (what the tuner times; the benchmark uses it too)."""
    from . import _select_ops  # lazy: _select_ops imports this module
    from .functional import spatial_topk

    def run(x, k):
        with _select_ops.kernel_library(target):
            return spatial_topk(x, k)

    return run


def _runners(builds: dict) -> dict[str, Callable]:
    runners = {name: pinned_runner(b.lib) for name, b in builds.items() if b.lib is not None}
    runners["torch"] = pinned_runner("torch")
    return runners


def _builds() -> dict:
    return {name: _select_build.build(name) for name in ("native", "portable")}


def _cache_path(builds: dict):
    names = [b.path.name if b.path else "-" for b in builds.values()]
    timed = [(Path(__file__).parent / name).read_text() for name in _TIMED_SOURCES]  # the PyTorch path, the dispatch
    key = "\0".join([*names, *timed, _cpu.cpu_signature(), str(torch.get_num_threads()), torch.__version__, str(VERSION)])
    return _select_build._cache_dir() / f"backend_choice_{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


@contextlib.contextmanager
def _file_lock(path):
    """An exclusive lock on ``path`` (POSIX ``flock``). Without one (Windows, a read-only or
    foreign-owned cache) it goes on unlocked: concurrent measurements are merely wasted work."""
    try:
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "a")
    except (ImportError, OSError):
        yield
        return
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _read(path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("choice"), dict):
        return None
    if data.get("version") != VERSION or set(data["choice"]) != set(CASES):
        return None
    if not set(data["choice"].values()) <= set(CANDIDATES):
        return None
    return data


def _measure_all(builds: dict) -> dict:
    runners = _runners(builds)
    started = time.perf_counter()
    scores = {row_cls: measure(runners, list(_cases(row_cls)), REPEATS) for row_cls in CASES}
    return {
        "version": VERSION,
        "choice": {row_cls: pick(s) for row_cls, s in scores.items()},
        "scores": scores,
        "cpu": _cpu.describe(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "libraries": {name: str(b.path) if b.path else b.status for name, b in builds.items()},
        "seconds": round(time.perf_counter() - started, 3),
    }


def _unmeasured(builds: dict, exc: Exception) -> dict:
    """The fallback when timing failed: the native build, else the portable one (not cached)."""
    path = "native" if builds["native"].lib is not None else "portable"
    return {"version": VERSION, "choice": dict.fromkeys(CASES, path), "scores": {}, "cpu": _cpu.describe(),
            "error": f"{type(exc).__name__}: {exc}"}


def decision() -> dict:
    """This machine's choice per row class (measuring it on first use); see the module doc.

    Keys: ``choice`` (row class -> candidate), ``scores``, ``cpu``, ``path`` (the cache
    file, or ``None``), ``source`` (``"measured"``, ``"cached"`` or why nothing was)."""
    if "decision" in _state:
        return _state["decision"]
    with _lock:
        if "decision" in _state:
            return _state["decision"]
        builds = _builds()
        if builds["native"].lib is None and builds["portable"].lib is None:
            result = {"choice": dict.fromkeys(CASES, "torch"), "scores": {}, "cpu": _cpu.describe(),
                      "path": None, "source": f"no C kernel: {builds['native'].status}"}
        else:
            path = _cache_path(builds)
            with _file_lock(path.with_suffix(".lock")):
                result = _read(path)
                source = "cached"
                if result is None:
                    try:
                        result = _measure_all(builds)
                        source = "measured"
                    except Exception as exc:  # never fail the user's call over a measurement
                        result = _unmeasured(builds, exc)
                        source = f"not measured ({type(exc).__name__}: {exc})"
                        warnings.warn(f"topk_plugin: could not time the selection paths, using {result['choice']}: "
                                      f"{exc}", RuntimeWarning, stacklevel=2)
                    else:
                        with contextlib.suppress(OSError):  # a read-only cache still gets this process's choice
                            atomic_write_json(path, result)
            result = {**result, "path": str(path), "source": source}
        _state["decision"] = result
        return result


def choice(row_cls: str) -> str:
    """``"native"``, ``"portable"`` or ``"torch"`` for a row class (see :func:`row_class`)."""
    return decision()["choice"][row_cls]


def remeasure() -> dict:
    """Forget the decision (in this process and on disk) and measure again."""
    with _lock:
        _state.pop("decision", None)
        builds = _builds()
        if builds["native"].lib is not None or builds["portable"].lib is not None:
            with contextlib.suppress(OSError):
                os.unlink(_cache_path(builds))
    return decision()
