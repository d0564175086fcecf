"""What CPU this is: model name, vector ISA and the feature flags that key the kernel caches.

One job: describe the machine for the kernel build cache, the backend choice and the
benchmark headers. Reads ``/proc/cpuinfo`` where it exists (Linux, x86 and ARM) and falls
back to ``platform`` elsewhere; never raises.
"""
from __future__ import annotations

import functools
import platform

__all__ = ["cpu_model", "cpu_flags", "cpu_signature", "vector_isa", "describe"]


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    """The first processor's ``key: value`` lines of /proc/cpuinfo (empty if unreadable)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, sep, value = line.partition(":")
                key = key.strip()
                if sep and key and key not in fields:
                    fields[key] = value.strip()
    except OSError:
        pass
    return fields


def cpu_model() -> str:
    info = _cpuinfo()
    return info.get("model name") or info.get("Model") or platform.processor() or platform.machine() or "unknown"


def cpu_flags() -> frozenset[str]:
    """The feature flags (x86 ``flags``, ARM ``Features``), lower case."""
    info = _cpuinfo()
    return frozenset((info.get("flags") or info.get("Features") or "").lower().split())


def cpu_signature() -> str:
    """What a kernel built with ``-march=native`` depends on: the machine and its flags.
    Without /proc/cpuinfo (macOS, Windows) only the processor name is known, so a cache
    shared between such machines should not hold native builds."""
    flags = cpu_flags()
    return f"{platform.machine()} {' '.join(sorted(flags))}" if flags else (platform.processor() or platform.machine())


def vector_isa(flags: frozenset[str] | None = None) -> str:
    """The widest integer vector ISA the CPU offers, by the same rule as the C source's
    ``TOPK_VBYTES`` (AVX-512 needs BW for 16-bit lanes)."""
    flags = cpu_flags() if flags is None else flags
    if {"avx512f", "avx512bw"} <= flags:
        return "AVX-512"
    if "avx2" in flags:
        return "AVX2"
    if "sse4_1" in flags:
        return "SSE4.1"
    if {"asimd", "neon"} & flags or platform.machine() in ("aarch64", "arm64"):
        return "NEON"
    return "none known"


def describe() -> str:
    """One line for benchmark headers and ``kernel_status()``."""
    return f"{cpu_model()} ({platform.machine()}, vector ISA {vector_isa()})"
