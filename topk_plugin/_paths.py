"""The one cache folder of topk-plugin (downloads, built kernels)."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV_VAR", "cache_dir"]

CACHE_ENV_VAR = "TOPK_PLUGIN_CACHE"


def cache_dir() -> Path:
    """``$TOPK_PLUGIN_CACHE``, else ``$XDG_CACHE_HOME/topk_plugin``, else ``~/.cache/topk_plugin``."""
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "topk_plugin"
