"""The placement search over fills: shared calibration == calibrate() per setting, the spec of a
fill='shift' setting reproduces its scores, resume keeps the shifts, the decomposition at the best."""
import copy
import dataclasses
import json

import pytest

import topk_plugin
from search.test_search import crash_in_phase_two, data, tiny_classifier  # noqa: F401 (fixture)
from topk_plugin.search import Setting, search_placement
from topk_plugin.search.calibration import calibrate_settings
from topk_plugin.shape_bias.batches import model_normalization, stream_batches
from topk_plugin.shape_bias.evaluate import evaluate_model
from topk_plugin.shape_bias.imagenet import evaluate_imagenet

KW = dict(name="tiny", topks=(0.25, 0.5), max_layers=2, beam=2, budget=100, batch_size=6, workers=0, progress=False)


def test_shared_calibration_equals_calibrate_per_setting(data):  # noqa: F811
    _, imagenet = data
    model = tiny_classifier()
    mean, std = model_normalization(model)
    batches = [x for x, _, _ in stream_batches(imagenet, batch_size=5, workers=0, device="cpu", mean=mean, std=std)]
    settings = [Setting(("1",), 0.25, fill="shift"), Setting(("3",), 0.25, fill="shift"),
                Setting(("1", "3"), 0.25, fill="shift"), Setting(("3", "6"), 0.5, fill="shift"),
                Setting(("1",), 0.25)]  # fill='zero': nothing to calibrate
    shifts = calibrate_settings(model, settings, batches)
    assert set(shifts) == set(settings[:4])
    for s in settings[:4]:
        alone = topk_plugin.sparsify(copy.deepcopy(model), list(s.layers), s.k, fill="shift")
        expected = topk_plugin.calibrate(alone, batches)
        assert shifts[s] == {layer: expected[layer].tolist() for layer in s.layers}, s
    assert shifts[settings[2]]["1"] == shifts[settings[0]]["1"]  # the combination starts like the single
    assert shifts[settings[2]]["3"] != shifts[settings[1]]["3"]  # but its later layer sees the shifted input
    assert calibrate_settings(model, settings, [], known=shifts) == shifts  # nothing left to measure


def test_search_over_fills_spec_reproduces_and_resume(data, tmp_path, monkeypatch):  # noqa: F811
    from topk_plugin.search import search as search_module

    cue, imagenet = data
    kw = dict(KW, fills=("zero", "shift"), report=(cue, imagenet), checkpoint=tmp_path / "ck.json")
    whole = search_placement(tiny_classifier(), cue, imagenet, **kw)
    fills = {s.fill for s in whole.evaluated}
    assert fills == {"zero", "shift"} and any(len(s.layers) == 2 and s.fill == "shift" for s in whole.evaluated)
    shift_settings = [s for s in whole.evaluated if s.fill == "shift"]
    assert set(whole.calibration) >= set(shift_settings)
    assert all(s.fill == "zero" for s in whole.controls)  # the random control is of the paper's op
    # the decomposition: the best's layers and K with each fill, on the report images
    rows = whole.to_json()["decomposition"]
    assert [r["fill"] for r in rows] == ["zero", "shift", "image-mean"]
    assert all(r["layers"] == list(whole.best.layers) for r in rows)
    assert "vs_zero" not in rows[0] and rows[1]["vs_zero"]["delta_shape_bias"] == pytest.approx(
        rows[1]["shape_bias"] - rows[0]["shape_bias"])
    # the spec of a shift setting reproduces its scores, from a fresh model
    s = max(shift_settings, key=lambda t: whole.evaluated[t].shape_bias)
    spec = dataclasses.replace(whole, best=s).best_spec()
    assert spec.options == {"fill": "shift"} and set(spec.shift) == set(s.layers)
    model = topk_plugin.sparsify(tiny_classifier(), topk_plugin.load_placement(spec.save(tmp_path / "spec.json")))
    sb = evaluate_model(model, cue, batch_size=5, workers=0, progress=False).result.shape_bias
    top1 = evaluate_imagenet(model, imagenet, batch_size=5, workers=0, progress=False).top1
    assert (sb, top1) == (whole.evaluated[s].shape_bias, whole.evaluated[s].imagenet_top1)
    # an interrupted search resumes with the same shifts and scores
    real = search_module.evaluate_settings
    monkeypatch.setattr(search_module, "evaluate_settings", crash_in_phase_two(real))
    with pytest.raises(KeyboardInterrupt):
        search_placement(tiny_classifier(), cue, imagenet, **{**kw, "checkpoint": tmp_path / "ck2.json"})
    monkeypatch.setattr(search_module, "evaluate_settings", real)
    resumed = search_placement(tiny_classifier(), cue, imagenet, **{**kw, "checkpoint": tmp_path / "ck2.json"},
                               resume=True)
    assert resumed.calibration == whole.calibration

    def scores(result):  # as text: NaN (no shape or texture decision) compares equal to itself
        return json.dumps({**result.to_json(), "timing": None}, sort_keys=True)

    assert scores(resumed) == scores(whole)


def test_unknown_fill_is_named(data):  # noqa: F811
    cue, imagenet = data
    with pytest.raises(ValueError, match="fills \\['mean'\\] must be one or more of 'zero', 'shift', 'image-mean'"):
        search_placement(tiny_classifier(), cue, imagenet, **KW, fills=("mean",))
