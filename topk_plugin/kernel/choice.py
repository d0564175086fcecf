"""Which selection path serves each row class on this machine: measured once, cached on disk.

Why: the same C source is fast on one CPU and slow on another (vector width, ports,
caches), and the pure-PyTorch path or the plain-C build can win where the vector
code does not. So the ``"auto"`` backend does not guess: the first time a CPU tensor
of a row class reaches the kernel ops, :func:`choice` times the candidates

* ``"native"``: the ``-march=native`` build with vector extensions,
* ``"portable"``: the ``-DTOPK_PORTABLE`` build (plain C),
* ``"torch"``: the pure-PyTorch selection (``kthvalue``),

on a few representative tensors of that class (:data:`CASES`: two shapes, post-ReLU and
signed inputs, K = 10% and 50%, interleaved, best of :data:`REPEATS`), and picks the
candidate with the lowest geometric mean time relative to the fastest one. All
candidates give the same bits, so the choice only changes speed.

Row classes: ``short`` rows (at most :data:`SHORT_MAX` positions: the C kernel's
vector-lane path) or ``long`` ones, times the key width (16 bits for float16/bfloat16,
32 for float32, 64 for float64). Only the classes a program uses are measured (a
float32 model: two), each under a time budget (:data:`BUDGET_SECONDS`, or
``$TOPK_PLUGIN_TUNE_SECONDS``): the cases left when it runs out are skipped and the
class is marked ``partial``. A one-line notice on stderr says when a measurement
starts. :func:`tune` (``topk-plugin tune``) measures every class without a budget,
ahead of time.

The decisions are written atomically to ``<cache>/kernels/backend_choice_<digest>.json``,
the digest covering both libraries' file names (which hash the sources, flags and
compiler), the CPU's flags, the thread count (``torch.get_num_threads()``: the paths
scale differently), the torch version and :data:`VERSION`; a lock file keeps concurrent
processes (pytest-xdist workers) from measuring at once. Another CPU flag set, a new
compiler or source, another thread count or another torch re-measures; the same
setting reads the file (a process keeps its decisions once made). ``TOPK_PLUGIN_BACKEND``
(``torch``, ``kernel``, ``portable``) bypasses all of this; :func:`remeasure` forgets the
decisions. A process that changes its thread count gets that count's decisions.
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

from .._io import atomic_write_json
from . import build, cpu, native, torch_path

__all__ = ["CANDIDATES", "CASES", "SHORT_MAX", "BUDGET_SECONDS", "row_class", "decision", "choice", "tune", "measure",
           "pick", "runner", "remeasure"]

VERSION = 2  # bump when CASES, REPEATS or the scoring change: old decisions are then ignored
CANDIDATES = ("native", "portable", "torch")
SHORT_MAX = 200  # the C source's LANES_MAX: rows up to this long take the short-row code
REPEATS = 5
KS = (0.1, 0.5)
BUDGET_SECONDS = float(os.environ.get("TOPK_PLUGIN_TUNE_SECONDS") or 3.0)  # per row class, on first use
_SHAPES = {"short": ((8, 128, 7, 7), (4, 64, 14, 14)), "long": ((2, 32, 56, 56), (4, 64, 28, 28))}
_DTYPES = {16: torch.float16, 32: torch.float32, 64: torch.float64}
CASES: dict[str, tuple[tuple[tuple[int, ...], ...], torch.dtype]] = {
    f"{length}-{bits}": (_SHAPES[length], dtype) for length in _SHAPES for bits, dtype in _DTYPES.items()
}

_TIMED_SOURCES = ("torch_path.py", "native.py", "layout.py")  # their code is timed too: part of the key
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
            clock: Callable[[], float] = time.perf_counter, deadline: float | None = None) -> dict[str, float]:
    """Geometric mean over ``cases`` of each runner's time relative to the fastest runner on
    that case (1.0 = fastest everywhere). Runners are called interleaved, best of ``repeats``
    after one warm-up call each, so load changes on the machine hit all alike; the order is
    shuffled (seeded) between repeats, because a call right after another one's large
    allocations can pay page faults for them (measured: 0.2 ms on a 1.6 MB output, a third
    of the selection itself, in a fixed order).

    ``deadline`` (a ``clock()`` value): no case starts after it, except the first; the
    number of cases timed is in the result's ``"cases"`` entry."""
    shuffle = random.Random(0).shuffle
    logs = {name: 0.0 for name in runners}
    count = 0
    for x, k in cases:
        if count and deadline is not None and clock() > deadline:
            break
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
    return {**{name: math.exp(total / max(count, 1)) for name, total in logs.items()}, "cases": count}


def pick(scores: dict[str, float]) -> str:
    """The candidate with the lowest score; ties go to the earlier one in :data:`CANDIDATES`."""
    return min((name for name in scores if name in CANDIDATES), key=lambda name: (scores[name], CANDIDATES.index(name)))


def runner(target) -> Callable:
    """``(x, k)`` -> the Top-K values of ``x`` (channel-first, ``ties="exact"``, by ``|x|``) on
    one path: a kernel library, or ``"torch"`` (the PyTorch path as the public op runs it)."""

    def run(x, k):
        kk = max(1, int(k * x[0, 0].numel()))
        if target == "torch":
            return torch_path.topk_keep(x, kk, 1, True, True, False, False)
        return native.run(target, x, kk, 1, True, True, False, want_out=True)

    return run


def _runners(builds: dict) -> dict[str, Callable]:
    runners = {name: runner(b.lib) for name, b in builds.items() if b.lib is not None}
    runners["torch"] = runner("torch")
    return runners


def _builds() -> dict:
    return build.builds(("native", "portable"))  # in parallel


def _cache_path(builds: dict):
    names = [b.path.name if b.path else "-" for b in builds.values()]
    timed = [(Path(__file__).parent / name).read_text() for name in _TIMED_SOURCES]  # the PyTorch path, the dispatch
    key = "\0".join([*names, *timed, cpu.cpu_signature(), str(torch.get_num_threads()), torch.__version__, str(VERSION)])
    return build._cache_dir() / f"backend_choice_{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


@contextlib.contextmanager
def _file_lock(path):
    """An exclusive lock on ``path`` (POSIX ``flock``). Without one (Windows, a read-only or
    foreign-owned cache) it goes on unlocked: concurrent measurements are merely wasted work."""
    try:
        import fcntl  # POSIX only: elsewhere the measurement runs unlocked

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
    """The decisions cached in ``path`` (classes may be missing), or None if unreadable or stale."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("classes"), dict):
        return None
    classes = {c: e for c, e in data["classes"].items()
               if c in CASES and isinstance(e, dict) and e.get("choice") in CANDIDATES}
    return {**data, "classes": classes}


def _header(builds: dict) -> dict:
    return {"version": VERSION, "cpu": cpu.describe(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "libraries": {name: str(b.path) if b.path else b.status for name, b in builds.items()}, "classes": {}}


def _measure_all(builds: dict, classes, budget: float | None) -> dict:
    """``{row class: entry}`` for ``classes``: the choice, the scores, the seconds it took, and
    how many of the class's cases were timed before ``budget`` (per class) ran out."""
    runners = _runners(builds)
    measured = {}
    for row_cls in classes:
        started = time.perf_counter()
        cases = list(_cases(row_cls))
        scores = measure(runners, cases, REPEATS, deadline=None if budget is None else started + budget)
        timed = scores.pop("cases")
        measured[row_cls] = {"choice": pick(scores), "scores": scores, "seconds": round(time.perf_counter() - started, 3),
                             "cases": timed, "of": len(cases), "budget": budget}
    return measured


def _unmeasured(builds: dict, classes, exc: Exception) -> dict:
    """The fallback when timing failed: the native build, else the portable one (not cached)."""
    path = "native" if builds["native"].lib is not None else "portable"
    return {c: {"choice": path, "scores": {}, "error": f"{type(exc).__name__}: {exc}"} for c in classes}


def _view(data: dict, path, source: str) -> dict:
    """What :func:`decision` returns: per class ``choice`` and ``scores``, plus where it came from."""
    classes = data["classes"]
    return {**{k: v for k, v in data.items() if k != "classes"}, "classes": classes,
            "choice": {c: e["choice"] for c, e in classes.items()},
            "scores": {c: e["scores"] for c, e in classes.items() if e.get("scores")},
            "partial": sorted(c for c, e in classes.items() if e.get("cases", 0) < e.get("of", 0)),
            "path": None if path is None else str(path), "source": source}


def _known() -> dict | None:
    """This process' decisions, if they were made for the current thread count."""
    known = _state.get("decision")
    if known is not None and known.get("threads", torch.get_num_threads()) != torch.get_num_threads():
        return None
    return known


def _ensure(classes, budget: float | None, *, fresh: bool = False) -> dict:
    """The decisions with every class of ``classes`` in them, measuring the missing ones
    (all of them with ``fresh``) now; under the process lock."""
    known = _known()
    if not fresh and known is not None and all(c in known["choice"] for c in classes):
        return known
    builds = _builds()
    if builds["native"].lib is None and builds["portable"].lib is None:
        data = {"version": VERSION, "cpu": cpu.describe(),
                "classes": {c: {"choice": "torch", "scores": {}} for c in CASES}}
        result = _view(data, None, f"no C kernel: {builds['native'].status}")
        _state["decision"] = result
        return result
    path = _cache_path(builds)
    with _file_lock(path.with_suffix(".lock")):
        data = (None if fresh else _read(path)) or _header(builds)
        if known is not None and known.get("path") == str(path):  # this process' own (maybe unsaved) decisions
            data["classes"] = {**known["classes"], **data["classes"]}
        missing = [c for c in classes if c not in data["classes"]]
        source = "cached"
        if missing:
            limit = "" if budget is None else f" (at most ~{budget:g} s per class)"
            build.notice(f"timing the CPU selection paths for {', '.join(missing)} rows once on this machine"
                                 f"{limit}; cached in {path.parent}; `topk-plugin tune` does it ahead of time")
            try:
                measured = _measure_all(builds, missing, budget)
                source = "measured"
            except Exception as exc:  # never fail the user's call over a measurement
                measured = _unmeasured(builds, missing, exc)
                source = f"not measured ({type(exc).__name__}: {exc})"
                warnings.warn(f"topk_plugin: could not time the selection paths, using "
                              f"{ {c: e['choice'] for c, e in measured.items()} }: {exc}", RuntimeWarning, stacklevel=3)
            data["classes"].update(measured)
            if source == "measured":
                with contextlib.suppress(OSError):  # a read-only cache still gets this process's choice
                    atomic_write_json(path, {k: v for k, v in data.items() if k not in ("path", "source")}
                                      | {"classes": {c: e for c, e in data["classes"].items() if "error" not in e}})
        result = _view(data, path, source)
    _state["decision"] = result
    return result


def decision() -> dict:
    """This machine's choice for every row class (measuring the missing ones, without a budget).

    Keys: ``choice`` (row class -> candidate), ``scores``, ``classes`` (per class: the
    choice, scores, seconds, cases timed), ``partial`` (classes cut short by the budget),
    ``cpu``, ``path`` (the cache file, or ``None``), ``source`` (``"measured"``,
    ``"cached"`` or why nothing was)."""
    known = _known()
    if known is not None and set(known["choice"]) >= set(CASES):
        return known
    with _lock:
        return _ensure(list(CASES), None)


def choice(row_cls: str) -> str:
    """``"native"``, ``"portable"`` or ``"torch"`` for a row class (see :func:`row_class`);
    measured within :data:`BUDGET_SECONDS` on its first use on this machine."""
    known = _known()
    if known is None or row_cls not in known["choice"]:
        with _lock:
            known = _ensure([row_cls], BUDGET_SECONDS)
    return known["choice"][row_cls]


def tune(classes=None) -> dict:
    """Measure the row classes (default: all) now and without a budget, replacing what is
    cached: what ``topk-plugin tune`` runs ahead of time (e.g. once per node and thread
    count, before a torchrun job). Returns :func:`decision`'s dict."""
    classes = list(CASES) if classes is None else list(classes)
    unknown = [c for c in classes if c not in CASES]
    if unknown:
        raise ValueError(f"unknown row classes {unknown}; choose from {', '.join(CASES)}")
    with _lock:
        known = _known()
        _state.pop("decision", None)
        if known is not None:  # keep this process' other classes, re-measure these
            known = {**known, "classes": {c: e for c, e in known["classes"].items() if c not in classes}}
            known["choice"] = {c: e["choice"] for c, e in known["classes"].items()}
            _state["decision"] = known
        result = _ensure(classes, None, fresh=True)
        if set(result["choice"]) < set(CASES):
            result = _ensure(list(CASES), None)
        return result


def remeasure() -> dict:
    """Forget the decisions (in this process and on disk) and measure every class again."""
    with _lock:
        _state.pop("decision", None)
        builds = _builds()
        if builds["native"].lib is not None or builds["portable"].lib is not None:
            with contextlib.suppress(OSError):
                os.unlink(_cache_path(builds))
    return decision()
