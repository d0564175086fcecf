"""``topk-plugin shape-bias``: model and CSV modes, JSON contract, files, errors."""
import json

import pytest

from topk_plugin.cli import main

from .test_dataset import make_set

KEYS = {"name", "topk", "shape_bias", "shape_or_texture", "accuracy", "per_category", "n_images", "seconds"}


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return make_set(tmp_path_factory.mktemp("cc") / "cue-conflict", per_category=80, size=32)


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
        "results.csv",
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
    lo, hi = result["shape_bias_ci"]  # resampled by image: 1280 images, 10 subjects each
    assert lo < 0.9587 < hi and hi - lo < 0.03


def test_bad_topk_is_a_clear_error(tiny_set, weights, capsys):
    code = main(["shape-bias", "--model", "tv:squeezenet1_1", "--weights", str(weights), "--data", str(tiny_set),
                 "--topk", "1.5"])
    assert code == 2
    assert "--topk 1.5 is not a fraction" in capsys.readouterr().err


def test_unknown_model_lists_close_names(tiny_set, capsys):
    assert main(["shape-bias", "--model", "resnt18", "--data", str(tiny_set)]) == 2
    assert "resnet18" in capsys.readouterr().err


@pytest.fixture(scope="module")
def imagenet_dir(tmp_path_factory):
    from PIL import Image

    from topk_plugin.shape_bias.imagenet import imagenet_wnids

    root = tmp_path_factory.mktemp("in1k")
    wnids = imagenet_wnids()
    for i in range(4):
        Image.new("RGB", (64, 48), (60 * i, 40, 200 - 40 * i)).save(root / f"{wnids[i * 100]}_{i}.png")
    return root


def test_imagenet_top1_and_random_control(tiny_set, weights, imagenet_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["shape-bias", "--model", "tv:squeezenet1_1", "--weights", str(weights), "--data", str(tiny_set),
                 "--topk", "0", "0.5", "--imagenet", str(imagenet_dir), "--control", "random", "--out", str(out),
                 "--batch-size", "128", "--workers", "0", "--json"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    rows = payload["results"]
    assert [(r["op"], r["topk"]) for r in rows] == [("dense", None), ("topk", 0.5), ("random", 0.5)]
    assert rows[2]["name"] == "squeezenet1_1_topk50_random" and rows[2]["layers"] == rows[1]["layers"]
    assert all(r["imagenet_top1"] in (0.0, 0.25, 0.5, 0.75, 1.0) for r in rows)  # 4 images
    assert rows[1]["csv"] != rows[2]["csv"]
    assert (out / "shape_bias_vs_top1.png").stat().st_size > 0
    # every number has its bootstrap interval; the settings also their paired difference from dense
    for r in rows:
        assert {"shape_bias_ci", "shape_or_texture_ci", "imagenet_top1_ci"} <= set(r)
        lo, hi = r["shape_or_texture_ci"]
        assert lo <= r["shape_or_texture"] <= hi
    assert "delta_top1" not in rows[0] and "delta_shape_bias" not in rows[0]
    for r in rows[1:]:
        assert r["delta_top1"] == pytest.approx(r["imagenet_top1"] - rows[0]["imagenet_top1"])
        assert r["delta_top1_ci"][0] <= r["delta_top1"] <= r["delta_top1_ci"][1]
        assert "delta_shape_bias_ci" in r
    # the random control repeats for a seed: its decisions are the same in a second run
    code = main(["shape-bias", "--model", "tv:squeezenet1_1", "--weights", str(weights), "--data", str(tiny_set),
                 "--topk", "0.5", "--control", "random", "--out", str(tmp_path / "again"), "--batch-size", "128",
                 "--workers", "0", "--json"])
    again = json.loads(capsys.readouterr().out)["results"][1]
    assert open(again["csv"]).read() == open(rows[2]["csv"]).read()


def test_control_needs_a_model(capsys):
    assert main(["shape-bias", "--csv", "x.csv", "--control", "random"]) == 2
    assert "--control and --placement need a model" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_edge(tmp_path_factory):
    from .test_shape_only import make_shape_only

    return make_shape_only(tmp_path_factory.mktemp("so") / "edge", "edge", size=32)


def test_search_placement_command(tiny_set, tiny_edge, weights, imagenet_dir, tmp_path, capsys):
    import csv

    import topk_plugin

    out = tmp_path / "search"
    code = main(["search-placement", "--model", "tv:squeezenet1_1", "--weights", str(weights), "--data", str(tiny_set),
                 str(tiny_edge), "--imagenet", str(imagenet_dir), "--layers", "features.3", "features.6", "features.9",
                 "--topk", "0.5", "--beam", "2", "--budget", "100", "--out", str(out), "--batch-size", "128",
                 "--workers", "0", "--shape-only", "edge", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    # the shape-only report: dense, front and best on edge (given by --data), with the shipped humans
    assert summary["shape_only"]["edge"]["root"] == str(tiny_edge.resolve())
    assert summary["shape_only"]["edge"]["humans"]["n_subjects"] == 10
    for row in [summary["dense"], summary["best"], *summary["front"]]:
        edge = row["shape_only"]["edge"]
        assert edge["n_images"] == 160 and "error_consistency_ci" in edge
        assert ("delta_accuracy" in edge) == (row is not summary["dense"])
    table = list(csv.DictReader((out / "evaluated.csv").open()))
    assert table[0]["edge_accuracy"] == str(summary["dense"]["shape_only"]["edge"]["accuracy"])
    assert (out / "shape_only.png").stat().st_size > 0
    assert summary["candidates"] == ["features.3", "features.6", "features.9"]
    assert len(summary["evaluated"]) == 3 + 1  # three singles, one pair of the two best
    assert {"shape_bias", "shape_or_texture", "imagenet_top1"} <= set(summary["dense"])
    assert all(r["control"]["op"] == "random" for r in summary["front"])
    assert (out / "search.json").exists() and (out / "front.png").exists()
    controls = sum("control" in r for r in summary["evaluated"])
    assert controls >= len(summary["front"])
    assert (out / "evaluated.csv").read_text().count("\n") == 1 + 1 + 4 + controls  # header, dense, settings, controls
    spec = topk_plugin.load_placement(summary["placement_spec"])
    assert sorted(spec.layers) == sorted(summary["best"]["layers"])
    model = topk_plugin.create_model("tv:squeezenet1_1", placement=summary["placement_spec"])
    assert set(topk_plugin.sparsified_layers(model)) == set(spec.layers)
    # held out by default: chosen on half the images, front and best scored again on the other half
    assert summary["holdout"]["search_images"][0] + summary["holdout"]["report_images"][0] == 1280
    assert all("report" in r for r in summary["front"]) and "report" in summary["best"]
    assert "held_out" in spec.provenance
    code = main(["search-placement", "--model", "tv:squeezenet1_1", "--weights", str(weights), "--data", str(tiny_set),
                 "--imagenet", str(imagenet_dir), "--layers", "features.3", "--topk", "0.5", "--budget", "100",
                 "--out", str(tmp_path / "all"), "--batch-size", "128", "--workers", "0", "--no-holdout",
                 "--no-control", "--shape-only"])
    assert code == 0
    table = capsys.readouterr().out
    assert "(all images;" in table and "held-out" not in table


def test_search_placement_over_fills(tiny_set, weights, imagenet_dir, tmp_path, capsys):
    import csv

    out = tmp_path / "fills"
    code = main(["search-placement", "--model", "tv:squeezenet1_1", "--weights", str(weights), "--data", str(tiny_set),
                 "--imagenet", str(imagenet_dir), "--layers", "features.3", "features.6", "--topk", "0.5",
                 "--max-layers", "1", "--fill", "zero", "shift", "--budget", "100", "--out", str(out),
                 "--batch-size", "128", "--workers", "0", "--no-control", "--shape-only"])
    assert code == 0
    table = capsys.readouterr().out
    decomposition = table.split("what Top-K removes")[1].splitlines()
    assert [line.split()[0] for line in decomposition[2:5]] == ["zero", "shift", "image-mean"]
    rows = list(csv.DictReader((out / "evaluated.csv").open()))
    assert sorted((r["fill"], r["layers"]) for r in rows if r["op"] == "topk") == [
        ("shift", "features.3"), ("shift", "features.6"), ("zero", "features.3"), ("zero", "features.6")]
    summary = json.loads((out / "search.json").read_text())
    assert [r["fill"] for r in summary["decomposition"]] == ["zero", "shift", "image-mean"]
    with pytest.raises(SystemExit):
        main(["search-placement", "--model", "tv:squeezenet1_1", "--imagenet", str(imagenet_dir), "--fill", "mean"])
    assert "invalid choice: 'mean'" in capsys.readouterr().err


def test_search_placement_two_families(tiny_set, weights, imagenet_dir, tmp_path, capsys):
    import csv

    import topk_plugin

    out = tmp_path / "families"
    code = main(["search-placement", "--model", "tv:squeezenet1_1", "--weights", str(weights), "--data", str(tiny_set),
                 "--imagenet", str(imagenet_dir), "--layers", "features.3", "features.6", "--topk", "0.5",
                 "--op", "topk", "stats-norm", "--strength", "0.5", "1", "--max-layers", "1", "--budget", "100",
                 "--out", str(out), "--batch-size", "128", "--workers", "0", "--no-control"])
    assert code == 0
    table = capsys.readouterr().out
    assert "-- front: Top-K" in table and "-- front: stats-norm control" in table
    assert "best Top-K within 100 points" in table and "best stats-norm within 100 points" in table
    assert "best stats-norm minus best Top-K (paired on the same images):" in table and "held-out images:" in table
    rows = list(csv.DictReader((out / "evaluated.csv").open()))
    control = sorted((r["strength"], r["layers"], r["topk"], r["fill"]) for r in rows if r["op"] == "stats-norm")
    assert control == [("0.5", "features.3", "", ""), ("0.5", "features.6", "", ""), ("1.0", "features.3", "", ""),
                       ("1.0", "features.6", "", "")]
    summary = json.loads((out / "search.json").read_text())
    assert set(summary["comparison"]["held_out"]) == {"delta_shape_bias", "delta_shape_bias_ci", "delta_top1",
                                                     "delta_top1_ci"}
    spec = topk_plugin.load_placement(out / "best_stats_norm_placement.json")
    assert spec.op == "stats-norm" and spec.layers == {
        layer: {"strength": summary["families"]["stats-norm"]["best"]["strength"]}
        for layer in summary["families"]["stats-norm"]["best"]["layers"]}
    assert topk_plugin.load_placement(out / "best_placement.json").op == "topk"
    with pytest.raises(SystemExit):
        main(["search-placement", "--model", "tv:squeezenet1_1", "--imagenet", str(imagenet_dir), "--op", "random"])
    assert "invalid choice: 'random'" in capsys.readouterr().err
    assert main(["search-placement", "--model", "tv:squeezenet1_1", "--imagenet", str(imagenet_dir), "--op",
                 "stats-norm", "--strength", "1.5", "--out", str(tmp_path / "bad")]) == 2
    assert "--strength 1.5 must lie in (0, 1]" in capsys.readouterr().err
