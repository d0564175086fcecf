"""The stimuli folder: completeness checks, decoding errors, locating and downloading."""
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from topk_plugin._paths import CACHE_ENV_VAR
from topk_plugin.shape_bias import locate
from topk_plugin.shape_bias.categories import CATEGORIES
from topk_plugin.shape_bias.dataset import CueConflictDataset, CueConflictError, scan_cue_conflict


def make_set(root, per_category=2, size=8):
    """A synthetic cue-conflict folder: ``per_category`` tiny PNGs per category."""
    rng = np.random.default_rng(0)
    for i, shape in enumerate(CATEGORIES):
        (root / shape).mkdir(parents=True)
        for j in range(per_category):
            texture = CATEGORIES[(i + j) % len(CATEGORIES)]
            pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / shape / f"{shape}{j + 1}-{texture}{j + 1}.png")
    return root


def test_real_set_is_complete(shared_dir):
    items = scan_cue_conflict(shared_dir / "data" / "cue-conflict")
    assert len(items) == 1280
    assert sum(shape == texture for _, shape, texture in items) == 80


def test_synthetic_set_decodes(tmp_path):
    data = CueConflictDataset(make_set(tmp_path / "cc"), per_category=2)
    image, index = data[5]
    assert image.dtype == torch.uint8 and image.shape == (3, 8, 8) and index == 5
    assert data.labels(0)[1] == "airplane"


def test_problems_are_named_with_paths(tmp_path):
    root = make_set(tmp_path / "cc", per_category=2)
    sorted((root / "bear").iterdir())[0].unlink()
    (root / "cat" / "holiday.png").write_bytes(b"x")
    (root / "dog" / "cat3-dog1.png").write_bytes(b"x")
    for p in (root / "truck").iterdir():
        p.unlink()
    (root / "truck").rmdir()
    with pytest.raises(CueConflictError) as info:
        scan_cue_conflict(root, per_category=2)
    text = str(info.value)
    assert f"missing folder {root / 'truck'}" in text
    assert str(root / "cat" / "holiday.png") in text
    assert str(root / "dog" / "cat3-dog1.png") in text
    assert f"{root / 'bear'} holds 1 valid images, expected 2" in text


def test_corrupt_image_names_its_path(tmp_path):
    root = make_set(tmp_path / "cc", per_category=1)
    broken = next((root / "oven").iterdir())
    broken.write_bytes(b"not a png")
    data = CueConflictDataset(root, per_category=1)
    index = next(i for i, item in enumerate(data.items) if item[0] == broken)
    with pytest.raises(CueConflictError, match=str(broken)):
        data[index]


def test_missing_folder(tmp_path):
    with pytest.raises(CueConflictError, match="not found"):
        scan_cue_conflict(tmp_path / "nowhere")


def test_locate_order(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "cache"))
    monkeypatch.delenv(locate.ENV_VAR, raising=False)
    assert locate.find_cue_conflict(tmp_path / "explicit") == tmp_path / "explicit"
    monkeypatch.setenv(locate.ENV_VAR, str(tmp_path / "env"))
    assert locate.find_cue_conflict() == tmp_path / "env"
    monkeypatch.delenv(locate.ENV_VAR)
    (tmp_path / "cache" / "cue-conflict").mkdir(parents=True)
    assert locate.find_cue_conflict() == tmp_path / "cache" / "cue-conflict"


def test_offline_error_says_where_to_put_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "cache"))
    monkeypatch.delenv(locate.ENV_VAR, raising=False)
    with pytest.raises(CueConflictError) as info:
        locate.find_cue_conflict(url=f"file://{tmp_path}/missing.tar.gz")
    text = str(info.value)
    assert str(tmp_path / "cache" / "cue-conflict") in text and "--data" in text and locate.ENV_VAR in text
    assert not (tmp_path / "cache" / "cue-conflict").exists()


def test_download_unpacks_a_release_archive(tmp_path, monkeypatch):
    """The real download code, fed a local archive with the release's layout."""
    make_set(tmp_path / "src" / "cue-conflict", per_category=80, size=2)
    archive = tmp_path / "cue-conflict.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cue-conflict", arcname="cue-conflict")
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "cache"))
    monkeypatch.delenv(locate.ENV_VAR, raising=False)
    found = locate.find_cue_conflict(url=archive.as_uri())
    assert found == tmp_path / "cache" / "cue-conflict"
    assert len(scan_cue_conflict(found)) == 1280
    assert locate.find_cue_conflict(url="file:///never/used") == found  # cached now
