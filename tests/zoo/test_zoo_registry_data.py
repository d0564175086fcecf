"""The registry data: the default rules still pick the stored layers; the docs match the data."""
from pathlib import Path

import pytest
import timm
import torchvision

from topk_plugin.zoo import TIMM, TORCHVISION
from topk_plugin.zoo.rules import timm_default, torchvision_default
from topk_plugin.zoo.table import markdown

DOCS = Path(__file__).resolve().parents[2] / "docs" / "MODELS.md"


@pytest.mark.parametrize("base", [b for b, p in TIMM.items() if p.rule != "paper"])
def test_timm_rule_matches_data(base):
    kwargs = {"img_size": 64} if base.startswith("vit") else {}
    placement = timm_default(timm.create_model(base, **kwargs))
    assert (placement.layers, placement.rule, placement.channel_dim) == (
        TIMM[base].layers, TIMM[base].rule, TIMM[base].channel_dim
    )


@pytest.mark.parametrize("base", [b for b, p in TORCHVISION.items() if p.rule == "tv-stage8"])
def test_torchvision_rule_matches_data(base):
    assert torchvision_default(torchvision.models.get_model(base)).layers == TORCHVISION[base].layers


def test_docs_table_is_generated_from_the_registry():
    assert DOCS.read_text(encoding="utf-8") == markdown(), (
        "docs/MODELS.md is stale: run python -m topk_plugin.zoo.table --write docs/MODELS.md"
    )
