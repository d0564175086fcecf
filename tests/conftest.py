import os
import sys
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
