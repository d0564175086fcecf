import pytest
import torch
from torch import nn


def tiny_net(seed: int = 0) -> nn.Sequential:
    """Three conv stages (32 px in -> 32, 16, 8 px maps), seeded so runs repeat."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4),
    ).eval()


TINY_LAYERS = ["1", "4", "7"]


@pytest.fixture
def net() -> nn.Sequential:
    return tiny_net()


@pytest.fixture
def target() -> torch.Tensor:
    """A 32 px image with structure (a bright square, a diagonal edge) and colour."""
    g = torch.Generator().manual_seed(1)
    img = 0.1 * torch.rand(1, 3, 32, 32, generator=g)
    img[:, 0, 6:18, 6:18] += 0.8
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    img[:, 2] += 0.7 * (xx > yy).float()
    return img.clamp(0, 1)
