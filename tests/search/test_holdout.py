"""Held-out search: the split by shape source image, and the report half's scores."""
from collections import Counter

import pytest

from search.test_search import data, tiny_classifier  # noqa: F401  (the module's fixture)
from topk_plugin.search import Setting, evaluate_settings, search_placement
from topk_plugin.search.holdout import holdout_split, source_image, split_cue_conflict, split_imagenet
from topk_plugin.shape_bias.dataset import CueConflictDataset
from topk_plugin.shape_bias.imagenet import ImageNetImages


def test_cue_conflict_split_keeps_each_source_image_on_one_side(shared_dir):
    cue = CueConflictDataset(shared_dir / "data" / "cue-conflict")
    search, report = split_cue_conflict(cue, seed=0)
    assert sorted(search + report) == list(range(len(cue)))
    sides = {}
    for side, indices in (("search", search), ("report", report)):
        for i in indices:
            name = source_image(cue.items[i][0].name)
            assert sides.setdefault(name, side) == side, f"{name} is on both sides"
    per_shape = Counter((cue.items[i][1], side) for side, idx in (("s", search), ("r", report)) for i in idx)
    assert all(per_shape[(shape, "s")] > 0 and per_shape[(shape, "r")] > 0 for shape, _ in per_shape)
    assert split_cue_conflict(cue, seed=0) == (search, report)  # stable for a seed
    assert split_cue_conflict(cue, seed=1) != (search, report)


def test_imagenet_split_is_even_within_and_across_classes(shared_dir):
    images = ImageNetImages(shared_dir / "data" / "imagenet-sample")
    search, report = split_imagenet(images, seed=0)
    assert sorted(search + report) == list(range(len(images))) and abs(len(search) - len(report)) <= 1
    assert split_imagenet(images, seed=0) == (search, report) and split_imagenet(images, seed=3) != (search, report)


def test_imagenet_split_with_several_images_per_class(tmp_path):
    from PIL import Image

    from topk_plugin.shape_bias.imagenet import imagenet_wnids

    wnids = imagenet_wnids()
    counts = {0: 4, 1: 3, 2: 1, 3: 5}
    for c, n in counts.items():
        for j in range(n):
            Image.new("RGB", (8, 8)).save(tmp_path / f"{wnids[c]}_{j}.png")
    images = ImageNetImages(tmp_path)
    search, report = split_imagenet(images)
    for c, n in counts.items():
        mine = [i for i in search if images.items[i][1] == c]
        assert len(mine) in (n // 2, n // 2 + 1)
    assert abs(len(search) - len(report)) <= 1


def test_source_image_needs_a_stimulus_name():
    assert source_image("dog10-cat3.png") == "dog10"
    with pytest.raises(ValueError, match="not a cue-conflict file name"):
        source_image("photo.png")


def test_search_chooses_on_one_half_and_reports_the_other(data, tmp_path):  # noqa: F811
    cue, imagenet = data
    (cue_s, in_s), (cue_r, in_r) = holdout_split(cue, imagenet, seed=0)
    kw = dict(name="tiny", topks=(0.25, 0.5), max_layers=2, beam=2, budget=100, batch_size=6, workers=0,
              progress=False)
    split = {"seed": 0}
    result = search_placement(tiny_classifier(), cue_s, in_s, report=(cue_r, in_r), holdout=split,
                              checkpoint=tmp_path / "ck.json", **kw)
    plain = search_placement(tiny_classifier(), cue_s, in_s, **kw)
    assert (result.front, result.best, result.evaluated) == (plain.front, plain.best, plain.evaluated)
    chosen = set(result.front) | {result.best}
    decomposition = [Setting(result.best.layers, result.best.k, "topk", f) for f in ("zero", "shift", "image-mean")]
    assert result.decomposition == decomposition and set(result.report) == chosen | set(decomposition)
    # the report half's scores are those of scoring the chosen settings on those images directly
    dense, direct, _ = evaluate_settings(tiny_classifier(), list(chosen), cue_r, in_r, cache=False, batch_size=6,
                                         workers=0, progress=False)
    assert {s: result.report[s] for s in chosen} == direct and result.report_dense == dense
    summary = result.to_json()
    assert summary["holdout"] == split
    best = summary["best"]
    assert best["report"]["shape_or_texture"] == direct[result.best].shape_or_texture
    assert best["report"]["delta_top1"] == pytest.approx(direct[result.best].imagenet_top1 - dense.imagenet_top1)
    assert {"shape_bias_ci", "imagenet_top1_ci", "delta_top1_ci"} <= set(best["report"])
    assert "report" in summary["dense"] and "delta_top1" not in summary["dense"]["report"]
    spec = result.best_spec()
    assert spec.provenance["held_out"]["imagenet_top1"] == direct[result.best].imagenet_top1
    assert all(p.exists() for p in result.plot(tmp_path / "front.png"))
    # a resumed search reads the report phase back instead of running it again
    again = search_placement(tiny_classifier(), cue_s, in_s, report=(cue_r, in_r), holdout=split,
                             checkpoint=tmp_path / "ck.json", resume=True, **kw)
    assert again.report == result.report and again.report_dense == result.report_dense
    assert len(cue_s) + len(cue_r) == len(cue) and len(in_s) + len(in_r) == len(imagenet)
