"""Shape bias and related numbers from per-image decisions (SPEC section 3)."""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

__all__ = ["Trial", "ShapeBiasResult", "shape_bias", "labels_from_filename", "CHANCE_SHAPE_OR_TEXTURE"]

# A classifier ignoring its input is right about shape or texture on 2 of 16 answers.
CHANCE_SHAPE_OR_TEXTURE = 0.125
# Flag a result when shape or texture is chosen less than twice as often as by chance.
NEAR_CHANCE_BELOW = 2 * CHANCE_SHAPE_OR_TEXTURE

_STIMULUS = re.compile(r"^(?P<shape>[a-z]+)\d+-(?P<texture>[a-z]+)\d+\.png$")


def labels_from_filename(name: str) -> tuple[str, str]:
    """``airplane1-bicycle2.png`` (optionally with a ``..._`` prefix) -> (shape, texture)."""
    base = name.rsplit("/", 1)[-1].rsplit("_", 1)[-1]
    match = _STIMULUS.match(base)
    if not match:
        raise ValueError(
            f"{name!r} is not a cue-conflict file name of the form <shape>N-<texture>M.png"
        )
    return match["shape"], match["texture"]


@dataclass(frozen=True)
class Trial:
    """One decision on one stimulus; ``decision`` None or 'na' counts as neither."""

    image: str
    shape: str
    texture: str
    decision: str | None
    subject: str = ""


@dataclass
class ShapeBiasResult:
    name: str
    shape_bias: float
    shape_or_texture: float
    accuracy: float
    shape_hits: int
    texture_hits: int
    n_conflict: int
    n_images: int
    near_chance: bool
    per_category: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _ratio(a: int, b: int) -> float:
    return a / b if b else math.nan


def shape_bias(trials: list[Trial], name: str = "") -> ShapeBiasResult:
    """Pooled over ``trials`` (one or many decision makers).

    * shape bias: shape hits / (shape hits + texture hits) over conflict images
      (shape != texture); other decisions are ignored;
    * shape_or_texture: (shape hits + texture hits) / conflict trials; 0.125 for
      a network that ignores its input, whose shape bias is then exactly 0.5;
    * accuracy: decision == shape label over all trials (conflict or not);
    * per_category: the shape bias within each shape class.
    """
    if not trials:
        raise ValueError("no trials to score")
    conflict = [t for t in trials if t.shape != t.texture]
    shape_hits = sum(t.decision == t.shape for t in conflict)
    texture_hits = sum(t.decision == t.texture for t in conflict)
    per_category = {}
    for category in sorted({t.shape for t in conflict}):
        mine = [t for t in conflict if t.shape == category]
        s = sum(t.decision == t.shape for t in mine)
        per_category[category] = _ratio(s, s + sum(t.decision == t.texture for t in mine))
    fraction = _ratio(shape_hits + texture_hits, len(conflict))
    return ShapeBiasResult(
        name=name,
        shape_bias=_ratio(shape_hits, shape_hits + texture_hits),
        shape_or_texture=fraction,
        accuracy=_ratio(sum(t.decision == t.shape for t in trials), len(trials)),
        shape_hits=shape_hits,
        texture_hits=texture_hits,
        n_conflict=len(conflict),
        n_images=len(trials),
        near_chance=bool(fraction < NEAR_CHANCE_BELOW) if conflict else True,
        per_category=per_category,
    )
