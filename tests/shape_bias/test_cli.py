"""``topk-plugin shape-bias``: model and CSV modes, JSON contract, files, errors."""
import json

import pytest
import torch
import torchvision

from topk_plugin.cli import main

from .test_dataset import make_set

KEYS = {"name", "topk", "shape_bias", "shape_or_texture", "accuracy", "per_category", "n_images", "seconds"}


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return make_set(tmp_path_factory.mktemp("cc") / "cue-conflict", per_category=80, size=32)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "squeezenet1_1.pth"
    torch.save(torchvision.models.squeezenet1_1().state_dict(), path)
    return path


def test_model_mode_json_and_files(tiny_set, weights, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["shape-bias", "--model", "tv:squeezenet1_1", "--weights", str(weights), "--data", str(tiny_set),
                 "--topk", "0", "0.5", "--out", str(out), "--batch-size", "128", "--workers", "0", "--json"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)  # stdout is exactly one JSON object
    dense, sparse = payload["results"]
    assert KEYS <= set(dense) and dense["topk"] is None and sparse["topk"] == 0.5
    assert dense["n_images"] == sparse["n_images"] == 1280
    assert sparse["layers"] == ["features.7"]  # the registry's placement for squeezenet1_1
    assert (dense["name"], sparse["name"]) == ("squeezenet1_1", "squeezenet1_1_topk50")
    assert sorted(p.name for p in out.glob("*.csv")) == [
        "cue-conflict_squeezenet1-1-topk50_session-1.csv",
        "cue-conflict_squeezenet1-1_session-1.csv",
    ]
    assert json.loads((out / "summary.json").read_text())["results"][0]["name"] == dense["name"]
    assert (out / "shape_bias.png").stat().st_size > 0 and (out / "shape_bias.pdf").stat().st_size > 0
    # the CSVs re-score to the same numbers
    assert main(["shape-bias", "--csv", sparse["csv"], "--json"]) == 0
    again = json.loads(capsys.readouterr().out)["results"][0]
    assert again["shape_bias"] == sparse["shape_bias"] or (again["shape_bias"] is None and sparse["shape_bias"] is None)
    assert again["shape_or_texture"] == sparse["shape_or_texture"]


def test_csv_mode_pools_files(shared_dir, capsys):
    files = sorted(str(p) for p in (shared_dir / "data/modelvshuman-raw/cue-conflict").glob("*subject-*"))
    assert main(["shape-bias", "--csv", *files, "--name", "humans", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["results"][0]
    assert result["name"] == "humans" and result["n_images"] == 12800
    assert result["shape_bias"] == pytest.approx(0.9587, abs=5e-5)


def test_bad_topk_is_a_clear_error(tiny_set, weights, capsys):
    code = main(["shape-bias", "--model", "tv:squeezenet1_1", "--weights", str(weights), "--data", str(tiny_set),
                 "--topk", "1.5"])
    assert code == 2
    assert "--topk 1.5 is not a fraction" in capsys.readouterr().err


def test_unknown_model_lists_close_names(tiny_set, capsys):
    assert main(["shape-bias", "--model", "resnt18", "--data", str(tiny_set)]) == 2
    assert "resnet18" in capsys.readouterr().err
