"""The ``topk-plugin`` command line (also ``python -m topk_plugin``)."""
from .main import main

__all__ = ["main"]
