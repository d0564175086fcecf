"""The C kernel's source and builds: warning-free in every configuration, shipped in the wheel,
vector width taken from the compile target."""
import platform
import subprocess

import pytest

from topk_plugin import kernel

CC = kernel.build._compiler()
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler")
SOURCE = kernel.build.source_dir() / "topk_select.c"

CONFIGS = [[], ["-DTOPK_PORTABLE"], ["-DTOPK_VBYTES=16"], ["-DTOPK_VBYTES=32"], ["-DTOPK_VBYTES=64"], ["-DTOPK_VBYTES=0"]]
if platform.machine() in ("x86_64", "AMD64"):
    CONFIGS += [["-march=x86-64"], ["-march=x86-64-v2"], ["-march=x86-64-v3"], ["-march=x86-64-v4"]]


@needs_cc
@pytest.mark.parametrize("flags", CONFIGS, ids=lambda f: " ".join(f) or "default")
def test_source_is_warning_free(flags):
    """-Wall -Wextra clean in every configuration the loader or the tests build (syntax and
    type checks; the optimised native build is checked below)."""
    proc = subprocess.run([CC, "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-fopenmp", "-fsyntax-only", *flags, str(SOURCE)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@needs_cc
def test_optimised_native_build_is_warning_free(tmp_path):
    proc = subprocess.run([CC, "-O3", "-march=native", "-fopenmp", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
                           "-o", str(tmp_path / "k.so"), str(SOURCE), "-lm"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@needs_cc
@pytest.mark.parametrize("defines, width", [(("-DTOPK_VBYTES=16",), 16), (("-DTOPK_PORTABLE",), 0), ((), None)])
def test_build_reports_its_vector_width(defines, width):
    build = kernel.build.build(defines=defines)
    assert build.lib is not None, build.status
    if width is None:  # native: never wider than the CPU's integer vectors

        width = {"AVX-512": 64, "AVX2": 32, "SSE4.1": 16, "NEON": 16}.get(kernel.cpu.vector_isa(), 0)
    assert build.vector_bytes == width
    assert (f"{width}-byte vectors" if width else "plain C") in build.status


def test_missing_compiler_is_reported_not_raised(monkeypatch):
    monkeypatch.setattr(kernel.build, "_compiler", lambda: None)
    build = kernel.build._compile("native", ())
    assert build.lib is None and "no C compiler" in build.status


def test_the_wheel_ships_the_kernel_source(wheel_names):
    """An editable install reads csrc/ from the checkout; a wheel must carry it as package data."""
    names = wheel_names
    for name in kernel.build.SOURCES:
        assert f"topk_plugin/kernel/csrc/{name}" in names
    assert "topk_plugin/py.typed" in names  # the annotations are for users' type checkers too
