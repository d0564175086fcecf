"""Where each registered base model gets Top-K: plain data, like timm's pretrained cfgs.

Every entry names the layers (module names of the *unwrapped* model), the rule
that chose them and whether the op runs over channels-first maps
(``channel_dim=1``) or channel-last tokens (``channel_dim=-1``). The paper's
placements are written out; every other entry is what the
family's default rule (:mod:`topk_plugin.zoo.rules`) picks, and a test checks
that the rule still picks exactly these layers.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Placement", "RULES", "TORCHVISION", "TIMM", "placement_for"]

# Rule id -> one-line description (rendered into docs/MODELS.md).
RULES = {
    "paper": "the placement the paper reports for this network",
    "timm-stage8": (
        "default for timm CNNs: after the last `feature_info` stage with reduction 8 "
        "(where the paper puts ResNet-18's Top-K: `layer2`); models without one get "
        "the middle `feature_info` entry; if that stage outputs a list (HRNet, SelecSLS), "
        "its shallowest last-run sub-module with a 4-D map at reduction 8"
    ),
    "timm-mid-block": (
        "default for timm token models (ViT): after the middle `feature_info` block "
        "(index len // 2), over all tokens including the class/prefix tokens (`channel_dim=-1`)"
    ),
    "paper-analogue": "the paper's VGG16 placement (after every max-pool) at this sibling's indices",
    "tv-stage8": (
        "default for torchvision CNNs (no `feature_info`): after the shallowest, last-run "
        "module whose output is a 4-D map at reduction 8 for a 224 px input"
    ),
}

ALEXNET_PAPER = ("features.2", "features.5", "features.7", "features.9", "features.12")
VGG16_PAPER = ("features.4", "features.9", "features.16", "features.23", "features.30")


@dataclass(frozen=True)
class Placement:
    """The layers of one base model that get Top-K, and why."""

    layers: tuple[str, ...]
    rule: str
    channel_dim: int = 1
    note: str = ""

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"unknown placement rule {self.rule!r}; rules: {', '.join(RULES)}")
        if not self.layers:
            raise ValueError("a placement needs at least one layer")


TORCHVISION: dict[str, Placement] = {
    "alexnet": Placement(ALEXNET_PAPER, "paper", note="pool1, pool2, ReLU3, ReLU4, pool5; best K 10%"),
    "vgg16": Placement(VGG16_PAPER, "paper", note="after every max-pool; best K 5%"),
    "vgg16_bn": Placement(
        ("features.6", "features.13", "features.23", "features.33", "features.43"),
        "paper-analogue",
        note="the same five max-pools as vgg16",
    ),
    "resnet18": Placement(("layer2",), "paper", note="after layer2; best K 20%"),
    "resnet50": Placement(("layer2",), "tv-stage8"),
    "squeezenet1_0": Placement(("features.10",), "tv-stage8"),
    "squeezenet1_1": Placement(("features.7",), "tv-stage8"),
    "mobilenet_v2": Placement(("features.6",), "tv-stage8"),
}

TIMM: dict[str, Placement] = {
    "resnet18": Placement(("layer2",), "paper", note="after layer2; best K 20%"),
    "resnet18_cifar": Placement(("layer2",), "paper", note="the authors' CIFAR-style ResNet-18 (zoo/cifar_resnet.py); best K 20%"),
    "resnet34": Placement(("layer2",), "timm-stage8"),
    "resnet50": Placement(("layer2",), "timm-stage8"),
    "vgg16": Placement(VGG16_PAPER, "paper", note="after every max-pool; best K 5%"),
    "efficientnet_lite0": Placement(("blocks.2",), "timm-stage8"),
    "tf_efficientnet_lite0": Placement(("blocks.2",), "timm-stage8"),
    "mobilenetv2_100": Placement(("blocks.2",), "timm-stage8"),
    "convnext_tiny": Placement(("stages.1",), "timm-stage8"),
    "vit_small_patch16_224": Placement(("blocks.6",), "timm-mid-block", channel_dim=-1),
}

_TABLES = {"timm": TIMM, "torchvision": TORCHVISION}


def placement_for(source: str, base: str) -> Placement | None:
    """The registered placement of ``base`` in ``source``, or None (use the default rule)."""
    return _TABLES[source].get(base)
