"""The trade-off: Pareto front of shape bias vs ImageNet top-1, and the best setting under a budget."""
from __future__ import annotations

__all__ = ["pareto_front", "best_within_budget"]


def pareto_front(points: dict) -> list:
    """Keys of ``points`` ({key: Scores}) that no other point beats on both shape bias and top-1,
    sorted by top-1 descending (ties: higher shape bias first)."""
    items = list(points.items())
    front = []
    for key, s in items:
        dominated = any(
            o.shape_bias >= s.shape_bias and o.imagenet_top1 >= s.imagenet_top1
            and (o.shape_bias > s.shape_bias or o.imagenet_top1 > s.imagenet_top1)
            for other, o in items if other != key
        )
        if not dominated:
            front.append(key)
    return sorted(front, key=lambda k: (-points[k].imagenet_top1, -points[k].shape_bias))


def best_within_budget(points: dict, dense_top1: float, budget_points: float):
    """The key with the highest shape bias whose top-1 is at most ``budget_points``
    percentage points below ``dense_top1`` (ties: higher top-1); None if none is."""
    allowed = [
        k for k, s in points.items()
        if (dense_top1 - s.imagenet_top1) * 100 <= budget_points + 1e-9
    ]
    if not allowed:
        return None
    return max(allowed, key=lambda k: (points[k].shape_bias, points[k].imagenet_top1))
