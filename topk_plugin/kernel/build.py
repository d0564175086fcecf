"""Build (once, cached on disk) and load the C selection kernel with ctypes.

One job: turn ``csrc/topk_select.c`` (package data) into shared libraries and expose
their entry points. Nothing here is required: when no C compiler is found, or the
build or the load fails, :func:`library` returns ``None``, :func:`status` says why,
and the caller uses the pure-PyTorch path.

Two builds of the same source serve the backend choice (:mod:`.choice`):

* ``"native"``: ``-O3 -march=native -fopenmp``; the source sizes its vector-extension
  code from the compile target (64 bytes with AVX-512, 32 with AVX2, 16 with
  SSE4/NEON, plain C otherwise);
* ``"portable"``: the same flags plus ``-DTOPK_PORTABLE`` (plain C, still
  auto-vectorised by the compiler for this CPU).

:func:`build` makes any other one (``march="x86-64-v3"`` measures the AVX2 code on an
AVX-512 machine). Each is retried without ``-march`` and then without OpenMP if the
compiler refuses them. The library links the OpenMP runtime by soname
(``libgomp.so.1``), the copy PyTorch has already loaded, so the kernel shares
PyTorch's thread pool instead of competing with it.

* Compiler: ``$CC`` if set, else the first of ``cc``, ``gcc``, ``clang`` on PATH.
* Cache: ``<topk_plugin cache>/kernels`` (``$TOPK_PLUGIN_CACHE``, default
  ``~/.cache/topk_plugin``); the file name hashes the sources, the flags, the compiler
  and the CPU's feature flags (``cpu.cpu_signature``, read from /proc/cpuinfo on
  Linux), so a cache shared between Linux machines never loads a library built for
  another CPU. Builds write to a temporary file and rename it into
  place, so concurrent processes (pytest-xdist workers) never see a partial library.
  A cache that cannot be written gets a one-line notice, and the kernel is built in a
  temporary folder for the process instead (the fast path stays; only the reuse goes).
  Each compilation prints one line on stderr: it takes seconds, once per machine.
"""
from __future__ import annotations

import atexit
import ctypes
import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .._paths import CACHE_ENV_VAR, cache_dir
from . import cpu

__all__ = ["Build", "build", "builds", "library", "portable_library", "status", "source_dir", "notice", "KEY_CTYPES",
           "VARIANTS"]

# ctypes type of the key (the float's same-width integer view) per kernel suffix
KEY_CTYPES = {"i16": ctypes.c_int16, "i32": ctypes.c_int32, "i64": ctypes.c_int64}
SOURCES = ("topk_select.c", "topk_select_body.h")
VARIANTS = {"native": (), "portable": ("-DTOPK_PORTABLE",)}

_lock = threading.Lock()
_key_locks: dict[tuple, threading.Lock] = {}
_builds: dict[tuple, Build] = {}
_unwritable: set[Path] = set()  # cache folders already reported as not writable
_private: dict[str, Path] = {}  # this process' build folder when the cache is not writable


@dataclasses.dataclass(frozen=True)
class Build:
    """One build of the kernel: the loaded library (``None`` if it failed) and what it is."""

    lib: ctypes.CDLL | None
    path: Path | None
    flags: tuple[str, ...]
    vector_bytes: int  # width of the vector-extension code; 0 = plain C (or not built)
    status: str


def source_dir() -> Path:
    return Path(__file__).parent / "csrc"


def _compiler() -> str | None:
    cc = os.environ.get("CC")
    if cc:
        return shutil.which(cc) or (cc if Path(cc).is_file() else None)
    for name in ("cc", "gcc", "clang"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _cache_dir() -> Path:
    return cache_dir() / "kernels"


def _declare(lib: ctypes.CDLL) -> None:
    lib.topk_vector_bytes.restype = ctypes.c_int
    lib.topk_vector_bytes.argtypes = []
    for suffix, key in KEY_CTYPES.items():
        rows = getattr(lib, f"topk_rows_{suffix}")
        rows.restype = None
        rows.argtypes = [
            ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
            ctypes.c_int, ctypes.c_int, ctypes.c_int, key, key,
            ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
        ]
        cl = getattr(lib, f"topk_cl_{suffix}")
        cl.restype = None
        cl.argtypes = [
            ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
            ctypes.c_int, ctypes.c_int, ctypes.c_int, key, key,
            ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
        ]


def _flag_sets(march: str | None, defines: tuple[str, ...]) -> list[list[str]]:
    arch = [f"-march={march}"] if march else []
    sets = [["-O3", *arch, "-fopenmp"], ["-O3", "-fopenmp"], ["-O3"]]
    return [[*flags, *defines] for flags in (sets if arch else sets[1:])]


def notice(message: str) -> None:
    """One line on stderr, when the kernel machinery does slow or surprising work for the user.

    Quiet once the cache was reported unwritable: that one notice already says the
    kernel is built and timed anew in each process."""
    if _cache_dir() not in _unwritable:
        _say(message)


def _say(message: str) -> None:
    print(f"topk-plugin: {message}", file=sys.stderr, flush=True)


def _writable_cache() -> Path | None:
    """The kernel cache folder if it can be created and written, else ``None`` (and a notice, once)."""
    folder = _cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
        return folder
    except OSError as exc:
        if folder not in _unwritable:
            _unwritable.add(folder)
            _say(f"the kernel cache {folder} is not writable ({exc.strerror or exc}): the C kernel is built in a "
                   f"temporary folder for this process only and timed again (a few seconds per process); set "
                   f"{CACHE_ENV_VAR} to a writable folder to keep them")
        return None


def _private_dir() -> Path:
    """A temporary folder for this process' builds when the cache is not writable (removed at exit)."""
    if "dir" not in _private:
        _private["dir"] = Path(tempfile.mkdtemp(prefix="topk_plugin_kernel_"))
        atexit.register(shutil.rmtree, _private["dir"], True)
    return _private["dir"]


def _compile(march: str | None, defines: tuple[str, ...]) -> Build:
    cc = _compiler()
    if cc is None:
        return Build(None, None, (), 0, "no C compiler found (set CC, or install gcc/clang)")
    try:
        sources = {name: (source_dir() / name).read_text() for name in SOURCES}
    except OSError as exc:
        return Build(None, None, (), 0, f"kernel source missing from the installed package: {exc}")
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return Build(None, None, (), 0, f"compiler {cc} does not run: {exc}")
    errors = []
    for flags in _flag_sets(march, defines):
        key = "\0".join([*sources.values(), " ".join(flags), version, cpu.cpu_signature()])
        name = f"topk_select_{hashlib.sha256(key.encode()).hexdigest()[:16]}.so"
        target = _cache_dir() / name
        if not target.is_file():
            folder = _writable_cache() or _private_dir()
            target = folder / name
        if not target.is_file():
            try:
                variant = " ".join(d.removeprefix("-D") for d in defines) or "native"
                notice(f"compiling the C selection kernel ({variant} build) once into {target.parent}")
                with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
                    for source_name, text in sources.items():
                        (Path(tmp) / source_name).write_text(text)
                    built = Path(tmp) / target.name
                    proc = subprocess.run(
                        [cc, *flags, "-shared", "-fPIC", "-o", str(built), str(Path(tmp) / SOURCES[0]), "-lm"],
                        capture_output=True, text=True, timeout=300,
                    )
                    if proc.returncode != 0:
                        errors.append(f"{' '.join(flags)}: {proc.stderr.strip()[-500:]}")
                        continue
                    os.replace(built, target)
            except (OSError, subprocess.SubprocessError) as exc:
                errors.append(f"{' '.join(flags)}: {exc}")
                continue
        try:
            lib = ctypes.CDLL(str(target))
            _declare(lib)
        except (OSError, AttributeError) as exc:
            errors.append(f"loading {target}: {exc}")
            continue
        width = lib.topk_vector_bytes()
        code = f"{width}-byte vectors" if width else "plain C"
        return Build(lib, target, tuple(flags), width, f"loaded {target} ({' '.join(flags)}; {code})")
    return Build(None, None, (), 0, "build failed: " + " | ".join(errors))


def build(variant: str = "native", *, march: str | None = "native", defines: tuple[str, ...] = ()) -> Build:
    """A build of the kernel, compiled on first use and cached (on disk and per process).

    ``variant`` names the :data:`VARIANTS` defines; ``march`` and ``defines`` make others
    (``build(march="x86-64-v3")``: the AVX2 code; ``defines=("-DTOPK_VBYTES=16",)``).
    Different builds compile concurrently (one lock per build).
    """
    key = (march, (*VARIANTS[variant], *defines))
    if key not in _builds:
        with _lock:
            lock = _key_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in _builds:
                _builds[key] = _compile(*key)
    return _builds[key]


def builds(variants=("native", "portable")) -> dict[str, Build]:
    """Several builds at once, compiled in parallel (each compiler is its own process)."""
    missing = [v for v in variants if (("native", VARIANTS[v]) not in _builds)]
    if len(missing) > 1:
        with ThreadPoolExecutor(len(missing)) as pool:
            list(pool.map(build, missing))
    return {v: build(v) for v in variants}


def library(variant: str = "native") -> ctypes.CDLL | None:
    """The loaded kernel library of ``variant``, building it on first use; ``None`` if unavailable."""
    return build(variant).lib


def portable_library() -> ctypes.CDLL | None:
    """The ``-DTOPK_PORTABLE`` build: the plain-C code that compilers without GCC/Clang
    vector extensions get (a backend candidate; the tests compare it with the others)."""
    return library("portable")


def status(variant: str = "native") -> str:
    """Where the kernel was loaded from and its vector width, or why it is not available."""
    return build(variant).status
