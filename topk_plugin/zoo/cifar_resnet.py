"""The paper's CIFAR-style ResNet-18 (SPEC section 2), registered with timm as ``resnet18_cifar``.

The authors trained this variant on IN-S1/IN-S2: a 3x3 stride-1 stem without
max-pool, torchvision's four ``BasicBlock`` stages (``layer1``..``layer4``, so
the paper's placement is ``layer2`` as for ``resnet18``) and a head of
``avg_pool2d(4)`` then ``Linear(25088, classes)`` at 224 px.

Head rule for other sizes: the head pools the ``img_size / 8`` map to a
``g x g`` grid, ``g = max(1, img_size // 32)``, with ``AdaptiveAvgPool2d(g)``
and feeds ``Linear(512 * g * g, classes)``. Whenever the map side is a multiple
of 4 this is exactly ``avg_pool2d(4)``: 224 px gives 7x7 and 25088 features
(the paper), 32 px gives 1x1 and 512 (the usual CIFAR head). Inputs of another
size than ``img_size`` still run (the grid is fixed), so weights never depend
on the input size, only on ``img_size`` at construction.

Registration makes every registry path work: ``timm.create_model``,
``topk_plugin.create_model("resnet18_cifar_topk20")``, the mean form, and
``features_only=True``. No pretrained weights exist.
"""
from __future__ import annotations

import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn
from torchvision.models.resnet import BasicBlock

from ..shape_bias.batches import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["CifarResNet", "resnet18_cifar", "head_grid"]


# Read by timm's register_model: one weightless cfg (architecture metadata only).
default_cfgs = generate_default_cfgs({
    "resnet18_cifar": {
        "url": "", "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7),
        "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "first_conv": "conv1", "classifier": "fc",
        "license": "mit",
    },
})


def head_grid(img_size: int) -> int:
    """The pooled grid side ``g`` of the head for ``img_size`` px (see the module docstring)."""
    return max(1, int(img_size) // 32)


class CifarResNet(nn.Module):
    """ResNet with a 3x3 stride-1 stem, no max-pool and a fixed-grid average-pool head."""

    def __init__(self, layers=(2, 2, 2, 2), num_classes: int = 1000, in_chans: int = 3, img_size: int = 224,
                 global_pool: str = "avg", drop_rate: float = 0.0):
        super().__init__()
        if int(img_size) < 8:
            raise ValueError(f"img_size must be >= 8 px (the stages reduce by 8), got {img_size}")
        self.num_classes = num_classes
        self.img_size = int(img_size)
        self.drop_rate = drop_rate
        self.conv1 = nn.Conv2d(in_chans, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.act1 = nn.ReLU(inplace=True)
        self.inplanes = 64
        self.layer1 = self._stage(64, layers[0], 1)
        self.layer2 = self._stage(128, layers[1], 2)
        self.layer3 = self._stage(256, layers[2], 2)
        self.layer4 = self._stage(512, layers[3], 2)
        g = head_grid(img_size)
        self.global_pool = nn.AdaptiveAvgPool2d(g)
        self.num_features = self.head_hidden_size = 512 * g * g
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        self.feature_info = [
            dict(num_chs=64, reduction=1, module="act1"),
            dict(num_chs=64, reduction=1, module="layer1"),
            dict(num_chs=128, reduction=2, module="layer2"),
            dict(num_chs=256, reduction=4, module="layer3"),
            dict(num_chs=512, reduction=8, module="layer4"),
        ]
        for m in self.modules():  # torchvision's ResNet init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _stage(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )
        stage = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        stage += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str = "avg") -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.global_pool(x), 1)
        if self.drop_rate:
            x = nn.functional.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model
def resnet18_cifar(pretrained: bool = False, **kwargs) -> CifarResNet:
    """The paper's CIFAR-style ResNet-18 (SPEC section 2); ``img_size`` sets the head (module docstring)."""
    return build_model_with_cfg(CifarResNet, "resnet18_cifar", pretrained, layers=(2, 2, 2, 2), **kwargs)
