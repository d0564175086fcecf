"""Build (once, cached on disk) and load the C selection kernel with ctypes.

One job: turn ``_select_csrc.source()`` into a shared library and expose its
entry points. Nothing here is required: when no C compiler is found, or the
build or the load fails, :func:`library` returns ``None``, :func:`status` says
why, and the caller uses the pure-PyTorch path.

* Compiler: ``$CC`` if set, else the first of ``cc``, ``gcc``, ``clang`` on PATH.
* Flags: ``-O3 -march=native -fopenmp`` (retried without ``-march=native`` and
  then without OpenMP if the compiler refuses them). The library links the
  OpenMP runtime by soname (``libgomp.so.1``), which is the copy PyTorch has
  already loaded, so the kernel shares PyTorch's thread pool instead of
  competing with it.
* Cache: ``<topk_plugin cache>/kernels`` (``$TOPK_PLUGIN_CACHE``, default ``~/.cache/topk_plugin``); the file name
  hashes the source, the flags, the compiler and the CPU's feature flags, so a
  cache shared between machines never loads a library built for another CPU.
  Builds write to a temporary file and rename it into place, so concurrent
  processes (pytest-xdist workers) never see a partial library.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from . import _select_csrc
from ._paths import cache_dir

__all__ = ["library", "portable_library", "status", "KEY_CTYPES"]

# ctypes type of the key (the float's same-width integer view) per kernel suffix
KEY_CTYPES = {"i16": ctypes.c_int16, "i32": ctypes.c_int32, "i64": ctypes.c_int64}

_FLAG_SETS = (
    ["-O3", "-march=native", "-fopenmp"],
    ["-O3", "-fopenmp"],
    ["-O3"],
)

_lock = threading.Lock()
_state: dict = {}


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


def _cpu_signature() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _declare(lib: ctypes.CDLL) -> None:
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


def _build(defines: tuple[str, ...] = ()) -> tuple[ctypes.CDLL | None, str]:
    cc = _compiler()
    if cc is None:
        return None, "no C compiler found (set CC, or install gcc/clang)"
    source = _select_csrc.source()
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"compiler {cc} does not run: {exc}"
    errors = []
    for flags in _FLAG_SETS:
        flags = [*flags, *defines]
        digest = hashlib.sha256("\0".join([source, " ".join(flags), version, _cpu_signature()]).encode()).hexdigest()[:16]
        target = _cache_dir() / f"topk_select_{digest}.so"
        if not target.is_file():
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
                    src = Path(tmp) / "topk_select.c"
                    src.write_text(source)
                    built = Path(tmp) / target.name
                    proc = subprocess.run(
                        [cc, *flags, "-shared", "-fPIC", "-o", str(built), str(src), "-lm"],
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
        return lib, f"loaded {target} ({' '.join(flags)})"
    return None, "build failed: " + " | ".join(errors)


def library() -> ctypes.CDLL | None:
    """The loaded kernel library, building it on first use; ``None`` if unavailable."""
    if "lib" not in _state:
        with _lock:
            if "lib" not in _state:
                _state["lib"], _state["status"] = _build()
    return _state["lib"]


def portable_library() -> ctypes.CDLL | None:
    """The kernel built with ``-DTOPK_PORTABLE``: the plain-C code that compilers without
    GCC/Clang vector extensions get (the tests compare it with the default build)."""
    if "portable" not in _state:
        with _lock:
            if "portable" not in _state:
                _state["portable"] = _build(("-DTOPK_PORTABLE",))[0]
    return _state["portable"]


def status() -> str:
    """Where the kernel was loaded from, or why it is not available."""
    library()
    return _state["status"]
