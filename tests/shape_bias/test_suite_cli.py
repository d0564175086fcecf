"""``topk-plugin shape-bias --datasets ...``: the shape-only datasets from the command line, offline."""
import csv
import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
import torchvision

from topk_plugin.cli import main
from topk_plugin.cli.datasets import data_folders
from topk_plugin.shape_bias.datasets import DATASETS

from .test_dataset import make_set
from .test_shape_only import make_shape_only

ROOT = Path(__file__).resolve().parents[2]


def _first_command() -> list[str]:
    """The README's first ``topk-plugin`` command after the install and test sections."""
    text = (ROOT / "README.md").read_text()
    command = re.search(r"```bash\n(topk-plugin [^\n]+)\n```", text.split("## Test", 1)[1]).group(1)
    return command.split()[1:]


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """A fresh install's situation: an empty cache, no dataset variables, and no network; returns the URLs
    that were asked for."""
    monkeypatch.setenv("TOPK_PLUGIN_CACHE", str(tmp_path / "empty-cache"))
    for spec in DATASETS.values():
        monkeypatch.delenv(spec.env_var, raising=False)
    asked = []

    def no_network(url, *args, **kwargs):
        asked.append(url)
        raise urllib.error.URLError("no network (test)")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    return asked


def test_readme_first_command_runs_offline_with_the_shipped_data(offline, tmp_path, capsys):
    args = _first_command()
    assert args[:3] == ["shape-bias", "--datasets", "edge"] and "--data" not in args and "--model" not in args
    out = tmp_path / "results"
    args = [a if a != "results/" else str(out) for a in args]
    assert main([*args, "--json", "--workers", "0", "--batch-size", "80"]) == 0
    summary = json.loads(capsys.readouterr().out)
    rows, humans = summary["results"], summary["humans"]
    assert [(r["dataset"], r["op"]) for r in rows] == [("edge", "dense"), ("silhouette", "dense"),
                                                       ("edge", "topk"), ("silhouette", "topk")]
    assert [(h["dataset"], round(h["accuracy"], 3), round(h["error_consistency"], 4)) for h in humans] == [
        ("edge", 0.871, 0.3184), ("silhouette", 0.753, 0.4757)]
    for r in rows:
        assert r["n_images"] == 160 and r["n_subjects"] == 10 and r["name"].startswith("tf_efficientnet_lite0")
        lo, hi = r["accuracy_ci"]
        assert lo <= r["accuracy"] <= hi and 0 < r["accuracy"] < 1
        assert len(r["error_consistency_per_subject"]) == 10
    assert "delta_accuracy" not in rows[0] and "delta_error_consistency_ci" in rows[2]
    assert summary["datasets"]["edge"].endswith("topk_plugin/shape_bias/data/edge")
    files = sorted(p.name for p in out.iterdir())
    assert "edge_tf-efficientnet-lite0_session-1.csv" in files and "shape_only.png" in files
    table = list(csv.DictReader((out / "results.csv").open()))
    assert [(r["dataset"], r["name"]) for r in table][:2] == [("edge", "humans"), ("silhouette", "humans")]
    assert float(table[4]["delta_accuracy"]) == pytest.approx(rows[2]["delta_accuracy"])
    # the decisions it wrote score the same through --csv
    assert main(["shape-bias", "--csv", rows[2]["csv"], "--json"]) == 0
    again = json.loads(capsys.readouterr().out)["results"][0]
    assert again["dataset"] == "edge" and again["accuracy"] == rows[2]["accuracy"]
    assert again["error_consistency"] == pytest.approx(rows[2]["error_consistency"])
    assert offline == []  # nothing was downloaded


def test_placements_controls_and_every_dataset(offline, weights, tmp_path, capsys):
    """Cue-conflict and shape-only sets in one run, each from --data, with a placement spec and the control."""
    data = tmp_path / "datasets"  # model-vs-human's datasets/ layout
    make_set(data / "cue-conflict", per_category=80, size=32)
    make_shape_only(data / "silhouette", "silhouette", size=32)
    make_shape_only(tmp_path / "my-sketches", "sketch", size=32)
    spec = tmp_path / "best.json"
    spec.write_text(json.dumps({"format": "topk-plugin.placement", "version": 1, "op": "topk",
                                "layers": {"features.3": 0.5, "features.6": 0.25}, "options": {"fill": "image-mean"}}))
    out = tmp_path / "out"
    code = main(["shape-bias", "--model", "tv:squeezenet1_1", "--weights", str(weights),
                 "--datasets", "cue-conflict", "silhouette", "sketch", "--data", str(data),
                 f"sketch={tmp_path / 'my-sketches'}", "--topk", "0", "--placement", f"mine={spec}",
                 "--control", "random", "--out", str(out), "--batch-size", "256", "--workers", "0", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    rows = summary["results"]
    assert [(r["name"], r["dataset"]) for r in rows] == [
        (name, d) for name in ("squeezenet1_1", "squeezenet1_1_mine", "squeezenet1_1_mine_random")
        for d in ("cue-conflict", "silhouette", "sketch")]
    mine = rows[3]
    assert mine["layers"] == ["features.3", "features.6"] and mine["fill"] == "image-mean" and mine["topk"] is None
    assert "delta_shape_bias" in mine and "shape_bias" in mine
    assert rows[4]["n_images"] == 160 and rows[5]["n_images"] == 800
    assert "error_consistency" in rows[4] and "error_consistency" not in rows[5]  # no sketch humans given
    assert [h["dataset"] for h in summary["humans"]] == ["silhouette"]
    assert (out / "sketch_squeezenet1-1-mine-random_session-1.csv").exists()
    assert rows[0]["layers"] is None and rows[6]["layers"] == mine["layers"]
    assert {Path(p).name for p in summary["plots"]} >= {"shape_bias.png", "shape_only.png"}
    assert offline == []


def test_a_placement_for_another_model_is_refused_before_any_work(weights, tmp_path, capsys):
    spec = tmp_path / "lite0.json"
    spec.write_text(json.dumps({"format": "topk-plugin.placement", "version": 1, "op": "topk",
                                "layers": {"blocks.6.0": 0.2}, "options": {}}))
    assert main(["shape-bias", "--model", "tv:squeezenet1_1", "--weights", str(weights), "--datasets", "edge",
                 "--placement", str(spec), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "--placement lite0: tv:squeezenet1_1 has no layer blocks.6.0" in err and "edge " not in err  # no progress


def test_csv_scoring_of_every_dataset(shared_dir, capsys):
    raw = shared_dir / "data" / "modelvshuman-raw"
    files = [str(p) for p in sorted((raw / "stylized").glob("*.csv"))]
    assert main(["shape-bias", "--csv", *files, "--humans", str(raw), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["results"]
    assert row["dataset"] == "stylized" and row["accuracy"] == pytest.approx(0.47125)
    assert row["error_consistency"] == pytest.approx(0.5006, abs=5e-5) and row["observers"] == 5
    tvs = shared_dir / "data" / "texture-vs-shape-raw"
    pooled = [str(tvs / "edge-experiment_alexnet_session_1.csv"), str(tvs / "silhouette-filled-experiment_vgg_session_1.csv"),
              str(raw / "cue-conflict" / "cue-conflict_resnet50_session-1.csv")]
    assert main(["shape-bias", "--csv", *pooled, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["results"]
    assert [(r["dataset"], r["name"]) for r in rows] == [("edge", "alexnet"), ("silhouette", "vgg"),
                                                         ("cue-conflict", "resnet50")]
    assert rows[2]["shape_bias"] == pytest.approx(0.2142, abs=5e-5)


def test_a_csv_of_unknown_dataset_needs_one(tmp_path, capsys):
    path = tmp_path / "mine.csv"
    path.write_text("subj,session,trial,rt,object_response,category,condition,imagename\n"
                    "m,1,1,NaN,oven,oven,NaN,oven1.png\n")
    assert main(["shape-bias", "--csv", str(path), "--datasets", "edge", "silhouette"]) == 2
    assert "pass one --datasets NAME" in capsys.readouterr().err
    assert main(["shape-bias", "--csv", str(path), "--datasets", "silhouette", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["results"][0]["dataset"] == "silhouette" and summary["results"][0]["accuracy"] == 1.0
    assert "error_consistency" not in summary["results"][0]  # one image of 160: accuracy only, and a note why
    assert "no error consistency" in summary["notes"][0]


def test_data_entries(tmp_path):
    (tmp_path / "datasets" / "edge").mkdir(parents=True)
    (tmp_path / "datasets" / "cue-conflict").mkdir()
    (tmp_path / "stimuli").mkdir()
    assert data_folders([str(tmp_path / "datasets")], ["cue-conflict", "edge", "sketch"]) == {
        "cue-conflict": tmp_path / "datasets" / "cue-conflict", "edge": tmp_path / "datasets" / "edge"}
    assert data_folders([f"sketch={tmp_path / 'stimuli'}", str(tmp_path / "datasets" / "edge")], ["edge", "sketch"]) == {
        "sketch": tmp_path / "stimuli", "edge": tmp_path / "datasets" / "edge"}
    assert data_folders([str(tmp_path / "stimuli")], ["edge"]) == {"edge": tmp_path / "stimuli"}
    assert data_folders([str(tmp_path / "stimuli")], ["cue-conflict", "edge"], primary="cue-conflict") == {
        "cue-conflict": tmp_path / "stimuli"}
    with pytest.raises(ValueError, match="which dataset is it"):
        data_folders([str(tmp_path / "stimuli")], ["cue-conflict", "edge"])
    with pytest.raises(ValueError, match="two folders for edge"):
        data_folders([str(tmp_path / "datasets" / "edge"), f"edge={tmp_path}"], ["edge"])
    with pytest.raises(ValueError, match="'skecth' is not a dataset"):
        data_folders(["skecth=/x"], ["sketch"])


def test_sketch_without_its_folder_says_where_to_get_it(offline, tmp_path, capsys):
    assert main(["shape-bias", "--datasets", "sketch", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "sketch stimuli not found" in err and "--data" in err and "TOPK_PLUGIN_SKETCH" in err
    assert offline == ["https://github.com/bethgelab/model-vs-human/releases/download/v0.1/sketch.tar.gz"]
    assert not (tmp_path / "out").exists()


def test_search_reports_the_shape_only_sets_present(offline, tmp_path, monkeypatch):
    """Without --shape-only: edge and silhouette (shipped), and sketch/stylized only where they are already."""
    import argparse

    from topk_plugin.cli.search_placement import _shape_only

    default = argparse.Namespace(shape_only=None)
    assert _shape_only(default, {}) == {"edge": None, "silhouette": None}
    monkeypatch.setenv("TOPK_PLUGIN_SKETCH", str(tmp_path / "sk"))
    assert _shape_only(default, {"stylized": tmp_path / "st"}) == {
        "edge": None, "silhouette": None, "sketch": None, "stylized": tmp_path / "st"}
    assert _shape_only(argparse.Namespace(shape_only=[]), {}) == {}
    assert offline == []  # looking never downloads


def test_a_stats_norm_placement_is_scored_with_its_strength_and_no_random_twin(weights, tmp_path, capsys):
    """A calibrated control spec (search-placement's best_stats_norm_placement.json) runs like a Top-K one."""
    import topk_plugin

    model = torchvision.models.squeezenet1_1()
    model.load_state_dict(torch.load(weights))
    topk_plugin.sparsify(model, ["features.3"], op="stats-norm", strength=0.5)
    topk_plugin.calibrate(model, [torch.randn(4, 3, 32, 32)])
    spec = tmp_path / "control.json"
    topk_plugin.PlacementSpec.from_model(model, model_name="tv:squeezenet1_1").save(spec)
    make_shape_only(tmp_path / "silhouette", "silhouette", size=32)
    code = main(["shape-bias", "--model", "tv:squeezenet1_1", "--weights", str(weights), "--datasets", "silhouette",
                 "--data", str(tmp_path), "--topk", "0", "--placement", f"control={spec}", "--control", "random",
                 "--out", str(tmp_path / "out"), "--batch-size", "256", "--workers", "0", "--json"])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)["results"]
    assert [(r["name"], r["op"]) for r in rows] == [("squeezenet1_1", "dense"), ("squeezenet1_1_control", "stats-norm")]
    control = rows[1]
    assert control["strength"] == 0.5 and control["topk"] is None and "fill" not in control
    assert control["layers"] == ["features.3"] and "delta_accuracy" in control
