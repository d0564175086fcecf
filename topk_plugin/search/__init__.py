"""Placement search: where should Top-K go to raise shape bias at a bounded cost in recognition?

``candidates`` (which layers), ``prefix`` (compute the dense prefix once per
layer), ``evaluate`` (settings and many of them in one pass), ``calibration``
(the constants of shift and stats-norm settings), ``front`` (Pareto front and
budget), ``holdout`` (search and report halves of the images), ``search`` (the
phases), ``result`` (scores with intervals, JSON, the figure, specs).
"""
from .candidates import eligible_layers
from .evaluate import FAMILIES, Scores, Setting, evaluate_settings
from .front import best_within_budget, pareto_front
from .holdout import holdout_split
from .prefix import PrefixRunner, TraceError
from .result import SearchResult
from .search import search_placement

__all__ = [
    "eligible_layers",
    "Scores",
    "Setting",
    "FAMILIES",
    "evaluate_settings",
    "best_within_budget",
    "pareto_front",
    "holdout_split",
    "PrefixRunner",
    "TraceError",
    "SearchResult",
    "search_placement",
]
