"""Search checkpoints: each finished phase is written atomically, so an interrupted search resumes.

The file holds the search's configuration (a resume with other settings is
refused, naming what differs), the dense scores, and the scores of every
finished phase, per-image decisions included, and the calibrated constants of
its ``fill="shift"`` and ``op="stats-norm"`` settings, so a resumed search returns
exactly what an uninterrupted one would.

A Top-K setting is written as ``{"layers", "k", "op", "fill"}`` (as before the
control existed, so older checkpoints still resume), a stats-norm setting as
``{"layers", "op", "strength"}``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from .._io import (
    atomic_write_json,
    check_same_settings,
    checkpoint_error,
    read_json_checkpoint,
)
from .evaluate import Scores, Setting

__all__ = ["SearchCheckpoint"]

FORMAT = "topk-plugin.search-checkpoint"


def _setting_json(s: Setting) -> dict:
    if s.op == "stats-norm":
        return {"layers": list(s.layers), "op": s.op, "strength": s.strength}
    return {"layers": list(s.layers), "k": s.k, "op": s.op, "fill": s.fill}


def _setting(d: dict) -> Setting:
    return Setting(tuple(d["layers"]), d.get("k"), d["op"], d.get("fill", "zero"), d.get("strength"))


def _scores_json(v: Scores) -> dict:
    return {**v.to_json(), "decisions": list(v.decisions), "hits": list(v.hits)}


def _scores(d: dict) -> Scores:
    # NaN (e.g. a shape bias with no shape or texture decision) is written as null
    numbers = {k: math.nan if d[k] is None else d[k] for k in ("shape_bias", "shape_or_texture", "accuracy",
                                                               "imagenet_top1")}
    return Scores(**{**d, **numbers, "decisions": tuple(d["decisions"]), "hits": tuple(d["hits"])})


class SearchCheckpoint:
    """Phases done so far (``{phase: {setting: scores}}``) for one configuration."""

    def __init__(self, path: str | Path | None, config: dict, resume: bool = False, write: bool = True):
        """``write=False``: read the file on resume but never write it (every process but rank 0)."""
        self.path = None if path is None else Path(path)
        self.write = write
        self.config = json.loads(json.dumps(config))  # as it reads back from JSON
        self.dense: Scores | None = None
        self.phase_dense: dict[str, Scores] = {}  # the dense model in phases on other images (the report half)
        self.phases: dict[str, dict] = {}
        self.timing: dict = {}
        self.calibration: dict = {}  # Setting -> {layer: constants} (see Setting.ops), saved with the next phase
        if resume and self.path is not None and self.path.is_file():
            self._load()

    def _load(self) -> None:
        data = read_json_checkpoint(self.path, FORMAT, required=("config", "phases"))
        if not isinstance(data["config"], dict):
            raise checkpoint_error(self.path, "its 'config' is not a mapping")
        check_same_settings(self.path, data["config"], self.config)
        try:
            self.dense = _scores(data["dense"]) if data.get("dense") else None
            self.phase_dense = {p: _scores(v) for p, v in data.get("phase_dense", {}).items()}
            self.phases = {
                phase: {_setting(s): _scores(v) for s, v in rows} for phase, rows in data["phases"].items()
            }
            self.timing = dict(data.get("timing", {}))
            # "shifts": written before the stats-norm control, when only shifts were calibrated
            self.calibration = {_setting(s): v for s, v in data.get("calibration", data.get("shifts", []))}
        except (KeyError, TypeError, ValueError, AttributeError) as error:  # an entry edited or cut away
            raise checkpoint_error(self.path, f"an entry is missing or malformed ({type(error).__name__}: {error})") \
                from None

    def done(self, phase: str) -> dict | None:
        return self.phases.get(phase)

    def save(self, phase: str, results: dict, seconds: float, dense: Scores | None = None,
             own_dense: bool = False) -> None:
        """Record a finished phase; ``dense`` is the search's dense scores, or with
        ``own_dense`` this phase's own (it ran on other images)."""
        self.phases[phase] = results
        self.timing[phase] = seconds
        if dense is not None and own_dense:
            self.phase_dense[phase] = dense
        elif dense is not None:
            self.dense = dense
        if self.path is None or not self.write:
            return
        atomic_write_json(self.path, {
            "format": FORMAT,
            "config": self.config,
            "dense": None if self.dense is None else _scores_json(self.dense),
            "phase_dense": {p: _scores_json(v) for p, v in self.phase_dense.items()},
            "phases": {p: [[_setting_json(s), _scores_json(v)] for s, v in rows.items()] for p, rows in self.phases.items()},
            "timing": self.timing,
            "calibration": [[_setting_json(s), v] for s, v in self.calibration.items()],
        })
