"""Brute-force, sort-based reference for spatial Top-K, independent of the library.

Written as plainly as possible: one (sample, channel) row at a time, a Python
sort over (NaN first, larger score first, lower index first), float64 math.
"""
from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import torch


def reference_k(k, positions: int) -> int:
    if isinstance(k, int):
        return min(k, positions)
    return max(1, min(positions, math.floor(Decimal(repr(float(k))) * positions)))


def _order(row: np.ndarray, rank_by: str) -> list[int]:
    scores = np.abs(row) if rank_by == "abs" else row

    def key(i):
        s = scores[i]
        return (0 if math.isnan(s) else 1, 0.0 if math.isnan(s) else -s, i)

    return sorted(range(len(row)), key=key)


def reference_topk(x: torch.Tensor, k, *, ties="exact", mode="keep", rank_by="abs",
                   invert=False, channel_dim=1, fill="zero", shift=None) -> torch.Tensor:
    """Same contract as topk_plugin.functional.spatial_topk, computed slowly."""
    moved = x.detach().movedim(channel_dim, 1)
    n, c = moved.shape[:2]
    rows = moved.reshape(n, c, -1).to(torch.float64).numpy()
    out = np.zeros_like(rows)
    positions = rows.shape[2]
    kk = reference_k(k, positions)
    for i in range(n):
        for j in range(c):
            row = rows[i, j]
            order = _order(row, rank_by)
            chosen = set(order[:kk])
            if ties == "threshold":
                kth = order[kk - 1]
                ref = np.abs(row) if rank_by == "abs" else row
                for idx in order[kk:]:
                    a, b = ref[idx], ref[kth]
                    if (math.isnan(a) and math.isnan(b)) or a == b:
                        chosen.add(idx)
            if invert:
                chosen = set(range(positions)) - chosen
            sel = sorted(chosen)
            rest = sorted(set(range(positions)) - chosen)
            if mode == "keep":
                out[i, j, sel] = row[sel]
            elif sel:
                with np.errstate(invalid="ignore"):  # inf - inf: NaN, as documented
                    out[i, j, sel] = np.mean(row[sel])
            if fill == "image-mean" and rest:
                out[i, j, rest] = np.mean(row[rest])
            if fill == "shift":
                out[i, j, :] += float(shift[j])
    result = torch.from_numpy(out).reshape(moved.shape).movedim(1, channel_dim)
    return result.to(x.dtype)


def reference_stats_norm(x: torch.Tensor, strength, mean, std, *, eps=1e-5, channel_dim=1) -> torch.Tensor:
    """Same contract as topk_plugin.stats_norm.channel_stats_norm, one (sample, channel) row at a time in
    float64 with Python's statistics: y = (1 - a) x + a ((x - mu_i) / (sd_i + eps) * sd_D + mu_D)."""
    import statistics

    moved = x.detach().movedim(channel_dim, 1)
    n, c = moved.shape[:2]
    rows = moved.reshape(n, c, -1).to(torch.float64).tolist()
    a = float(strength)
    out = []
    for i in range(n):
        out.append([])
        for j in range(c):
            row = rows[i][j]
            mu = math.fsum(row) / len(row)
            sd = statistics.pstdev(row, mu)
            mu_d, sd_d = float(mean[j]), float(std[j])
            out[i].append([(1 - a) * v + a * ((v - mu) / (sd + eps) * sd_d + mu_d) for v in row])
    result = torch.tensor(out, dtype=torch.float64).reshape(moved.shape).movedim(1, channel_dim)
    return result.to(x.dtype)


def reference_channel_stats(x: torch.Tensor, channel_dim=1) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample and channel: the spatial mean and population standard deviation, (n, c), float64."""
    import statistics

    moved = x.detach().movedim(channel_dim, 1)
    rows = moved.reshape(*moved.shape[:2], -1).to(torch.float64).tolist()
    mu = [[math.fsum(r) / len(r) for r in sample] for sample in rows]
    sd = [[statistics.pstdev(r) for r in sample] for sample in rows]
    return torch.tensor(mu, dtype=torch.float64), torch.tensor(sd, dtype=torch.float64)
