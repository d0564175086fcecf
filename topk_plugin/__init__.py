"""topk-plugin: spatial Top-K activation sparsity for any PyTorch CNN.

Li, Wen, Li, Lee, "Emergence of Shape Bias in Convolutional Neural Networks
through Activation Sparsity", NeurIPS 2023.
"""
# After the core: registering the zoo's model names needs sparsify.
from . import (
    functional,
    zoo,  # noqa: E402
)
from .attachment import NotATensorError, sparsified_layers
from .calibrate import calibrate
from .functional import channel_stats_norm, random_k, spatial_topk
from .kernel import kernel_status, tune
from .layers import LayerInfo, UnknownLayerError, format_table, list_layers
from .modules import ChannelStatsNorm, RandomK, TopK
from .placement_spec import PlacementSpec, load_placement
from .summary import SparsityRow, sparsity_summary
from .surgery import sparsified, sparsify, unsparsify
from .zoo import create_model  # noqa: E402

zoo.register_all()

__version__ = "0.1.0"

__all__ = [
    "functional",
    "zoo",
    "create_model",
    "spatial_topk",
    "random_k",
    "channel_stats_norm",
    "kernel_status",
    "tune",
    "TopK",
    "RandomK",
    "ChannelStatsNorm",
    "PlacementSpec",
    "load_placement",
    "sparsify",
    "unsparsify",
    "calibrate",
    "sparsified",
    "sparsified_layers",
    "list_layers",
    "sparsity_summary",
    "format_table",
    "LayerInfo",
    "SparsityRow",
    "UnknownLayerError",
    "NotATensorError",
    "__version__",
]
