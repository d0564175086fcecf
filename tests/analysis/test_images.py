import numpy as np
import pytest
import torch
from PIL import Image

from topk_plugin.analysis.images import image_grid, load_image, to_pil, to_tensor


def test_resize_short_side_and_centre_crop(tmp_path):
    arr = np.zeros((40, 80, 3), np.uint8)
    arr[:, 20:60] = 255  # the centre 40 columns are white
    path = tmp_path / "wide.png"
    Image.fromarray(arr).save(path)
    t = load_image(path, 20)
    assert t.shape == (1, 3, 20, 20) and t.dtype == torch.float32
    assert t.min() > 0.9  # only the white centre survives the crop
    assert load_image(path).shape == (1, 3, 40, 80)


def test_round_trip_and_grid():
    t = torch.rand(1, 3, 16, 16)
    back = to_tensor(to_pil(t))
    assert (back - t).abs().max() <= 0.5 / 255 + 1e-6
    grid = image_grid([t, t, t], ["a", "b\nc", None], cell=32, pad=2)
    assert grid.width == 3 * 34 + 2


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "none.png")
    (tmp_path / "x.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot read image"):
        load_image(tmp_path / "x.png")
