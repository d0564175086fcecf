import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # for `reference`

DEFAULT_THREADS = torch.get_num_threads()  # what a subprocess of the tests (the CLI) runs with
torch.set_num_threads(1)  # pytest-xdist runs one worker per core

SHARED = Path(os.environ.get("TOPK_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED} (set TOPK_SHARED)")
    return SHARED

from hypothesis import settings  # noqa: E402

settings.register_profile("default", deadline=None, max_examples=150, derandomize=False)
settings.load_profile("default")


@pytest.fixture(scope="session", autouse=True)
def kernel_decided():
    """Time the CPU selection paths before any test, for this process' thread count and a subprocess's,
    so no test's stderr gets the one-time notice of a first measurement (cached on disk: once per machine)."""
    from topk_plugin.kernel import choice

    for threads in sorted({1, DEFAULT_THREADS}):
        torch.set_num_threads(threads)
        choice.decision()
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def wheel_names(tmp_path_factory) -> set[str]:
    """The file names inside a wheel built from a copy of the checkout (built once per session; the copy keeps
    the build from leaving anything in the checkout)."""
    root = Path(__file__).resolve().parents[1]
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    for name in ("topk_plugin", "integrations"):
        shutil.copytree(root / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp), str(src)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(zipfile.ZipFile(next(tmp.glob("topk_plugin-*.whl"))).namelist())
