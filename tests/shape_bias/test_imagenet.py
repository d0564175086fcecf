"""ImageNet top-1 on a labelled folder: layouts, labels, preprocessing, errors, a real model."""
import pytest
import torch
from PIL import Image
from torch import nn

from topk_plugin.shape_bias.imagenet import (
    ImageNetError,
    ImageNetImages,
    eval_transform,
    evaluate_imagenet,
    imagenet_wnids,
)

WNIDS = imagenet_wnids()


def test_wnids_are_the_sorted_1000():
    assert len(WNIDS) == 1000 and WNIDS == sorted(WNIDS) and WNIDS[0] == "n01440764"


class ColourClassifier(nn.Module):
    """Class 0 for a red image, class 1 for a green one (logits from the mean colour)."""

    def forward(self, x):
        logits = torch.full((x.shape[0], 1000), -5.0)
        logits[:, 0] = x[:, 0].mean((1, 2))
        logits[:, 1] = x[:, 1].mean((1, 2))
        return logits


def _save(path, colour, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


@pytest.mark.parametrize("layout", ["named", "folders"])
def test_top1_counts_hits(tmp_path, layout):
    red, green = (255, 0, 0), (0, 255, 0)
    files = [(WNIDS[0], red, "a"), (WNIDS[1], green, "b"), (WNIDS[1], red, "c"), (WNIDS[0], red, "d")]
    for wnid, colour, stem in files:
        _save(tmp_path / (f"{wnid}/{stem}.JPEG" if layout == "folders" else f"{wnid}_{stem}.png"), colour)
    result = evaluate_imagenet(ColourClassifier(), tmp_path, batch_size=3, workers=0, progress=False)
    assert result.n_images == 4
    assert result.top1 == 0.75  # the red image labelled as class 1 is the miss
    assert result.correct.count(False) == 1


def test_transform_follows_the_model():
    tv = eval_transform(nn.Conv2d(3, 3, 1))  # no pretrained_cfg: torchvision's 256 -> 224, bilinear
    out = tv(Image.new("RGB", (512, 300)))
    assert out.shape == (3, 224, 224) and out.dtype == torch.uint8
    net = nn.Conv2d(3, 3, 1)
    net.pretrained_cfg = dict(input_size=(3, 160, 160), crop_pct=1.0, interpolation="bilinear")
    assert eval_transform(net)(Image.new("RGB", (400, 200))).shape == (3, 160, 160)


def test_errors_name_the_files(tmp_path):
    with pytest.raises(ImageNetError, match="not found"):
        ImageNetImages(tmp_path / "missing")
    with pytest.raises(ImageNetError, match="no images"):
        ImageNetImages(tmp_path)
    _save(tmp_path / "holiday.jpg", (0, 0, 0))
    with pytest.raises(ImageNetError, match="holiday.jpg"):
        ImageNetImages(tmp_path)
    (tmp_path / "holiday.jpg").unlink()
    (tmp_path / f"{WNIDS[3]}_broken.jpg").write_bytes(b"not a jpeg")
    data = ImageNetImages(tmp_path)
    with pytest.raises(ImageNetError, match="broken.jpg"):
        data[0]


def test_real_squeezenet_top1(shared_dir, tmp_path):
    """SqueezeNet 1.1 (../shared/weights) on the first 100 classes of the sample: README says ~0.61."""
    from topk_plugin.zoo import create_model

    sample = sorted((shared_dir / "data" / "imagenet-sample").iterdir())[:100]
    for path in sample:
        (tmp_path / path.name).symlink_to(path)
    model = create_model("tv:squeezenet1_1", weights_path=shared_dir / "weights" / "squeezenet1_1_imagenet_torchvision_norm.pth")
    result = evaluate_imagenet(model, tmp_path, batch_size=50, workers=1, progress=False)
    assert result.n_images == 100
    assert 0.45 <= result.top1 <= 0.85


def test_category_wnids_match_the_indices():
    """The 16 categories' wnids are the wnids at their ImageNet indices (two views of one table)."""
    from topk_plugin.shape_bias.categories import category_indices, category_wnids

    wnids = category_wnids()
    assert {c: [WNIDS[i] for i in idx] for c, idx in category_indices().items()} == wnids
