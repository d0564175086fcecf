"""Commands reach ``topk_plugin.integrations`` only through here, only when they run.

The core never imports an integration at import time, so ``import topk_plugin``
and ``topk-plugin --help`` work without any integration's extras installed.
"""
from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["load_integration"]


def load_integration(name: str) -> ModuleType:
    """``topk_plugin.integrations.<name>``, imported now."""
    return importlib.import_module(f"topk_plugin.integrations.{name}")
