"""Placement search: where should Top-K go to raise shape bias at a bounded cost in recognition?

``candidates`` (which layers), ``prefix`` (compute the dense prefix once per
layer), ``evaluate`` (many settings in one pass), ``front`` (Pareto front and
budget), ``holdout`` (search and report halves of the images), ``search``
(the phases), ``plot`` (the figure).
"""
from .candidates import eligible_layers
from .evaluate import Scores, Setting, evaluate_settings
from .front import best_within_budget, pareto_front
from .holdout import holdout_split
from .prefix import PrefixRunner, TraceError
from .search import SearchResult, search_placement

__all__ = [
    "eligible_layers",
    "Scores",
    "Setting",
    "evaluate_settings",
    "best_within_budget",
    "pareto_front",
    "holdout_split",
    "PrefixRunner",
    "TraceError",
    "SearchResult",
    "search_placement",
]
