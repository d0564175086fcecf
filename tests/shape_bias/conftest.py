import pytest
import torch
import torchvision


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A seeded random SqueezeNet 1.1 state dict on disk, for the command line's --weights."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "squeezenet1_1.pth"
    torch.save(torchvision.models.squeezenet1_1().state_dict(), path)
    return path
