"""The search over two op families, Top-K and the stats-norm control: settings with a strength, shared
calibration == calibrate() per setting, one front and best per family, the paired comparison, the control's
spec reproducing its scores, and resume."""
import copy
import json

import pytest

import topk_plugin
from search.test_search import crash_in_phase_two, data, tiny_classifier  # noqa: F401 (fixture)
from topk_plugin.search import Setting, evaluate_settings, pareto_front, search_placement
from topk_plugin.search.calibration import calibrate_settings
from topk_plugin.search.checkpoint import SearchCheckpoint, _setting, _setting_json
from topk_plugin.search.holdout import holdout_split
from topk_plugin.search.result import scores_with_intervals
from topk_plugin.shape_bias.batches import model_normalization, stream_batches
from topk_plugin.shape_bias.evaluate import evaluate_model
from topk_plugin.shape_bias.imagenet import evaluate_imagenet

KW = dict(name="tiny", topks=(0.25, 0.5), strengths=(0.5, 1.0), ops=("topk", "stats-norm"), max_layers=2, beam=2,
          budget=100, batch_size=6, workers=0, progress=False)


def test_a_stats_norm_setting_has_a_strength_not_a_k():
    s = Setting(("1", "3"), op="stats-norm", strength=0.35)
    assert (s.k, s.fill, s.strength, s.family) == (None, None, 0.35, "stats-norm")
    assert s.label() == "stats-norm 0.35 @ 1+3" and s.parameter() == "strength=0.35"
    assert Setting(("1",), 0.2).family == Setting(("1",), 0.2, "random").family == "topk"
    with pytest.raises(ValueError, match="has a strength, not a K"):
        Setting(("1",), 0.2, "stats-norm", strength=0.5)
    with pytest.raises(ValueError, match="strength=1.5 must lie in"):
        Setting(("1",), op="stats-norm", strength=1.5)
    with pytest.raises(ValueError, match="a topk setting has a K and no strength"):
        Setting(("1",), 0.2, strength=0.5)
    with pytest.raises(ValueError, match="no fill"):
        Setting(("1",), op="stats-norm", strength=0.5, fill="shift")
    # in checkpoints: a Top-K setting as before the control existed, the control with its strength
    assert _setting_json(Setting(("1",), 0.2)) == {"layers": ["1"], "k": 0.2, "op": "topk", "fill": "zero"}
    assert _setting_json(s) == {"layers": ["1", "3"], "op": "stats-norm", "strength": 0.35}
    assert _setting(json.loads(json.dumps(_setting_json(s)))) == s


def test_an_older_checkpoint_still_resumes(tmp_path):
    """A checkpoint written before the control (its shifts under "shifts", no "ops" in its config)."""
    path = tmp_path / "old.json"
    setting = Setting(("1",), 0.25, fill="shift")
    path.write_text(json.dumps({"format": "topk-plugin.search-checkpoint", "config": {"model": "tiny"}, "dense": None,
                                "phases": {}, "shifts": [[_setting_json(setting), {"1": [0.5, 1.0]}]]}))
    state = SearchCheckpoint(path, {"model": "tiny"}, resume=True)
    assert state.calibration == {setting: {"1": [0.5, 1.0]}}


def _batches(imagenet, model):
    mean, std = model_normalization(model)
    return [x for x, _, _ in stream_batches(imagenet, batch_size=5, workers=0, device="cpu", mean=mean, std=std)]


def test_shared_calibration_equals_calibrate_per_setting(data):  # noqa: F811
    _, imagenet = data
    model = tiny_classifier()
    batches = _batches(imagenet, model)
    settings = [Setting(("1",), op="stats-norm", strength=0.5), Setting(("1",), op="stats-norm", strength=1.0),
                Setting(("3",), op="stats-norm", strength=0.5), Setting(("1", "3"), op="stats-norm", strength=0.5),
                Setting(("1", "3"), op="stats-norm", strength=1.0), Setting(("3", "6"), 0.5, fill="shift")]
    constants = calibrate_settings(model, settings, batches)
    assert set(constants) == set(settings)
    for s in settings:
        alone = copy.deepcopy(model)
        if s.op == "stats-norm":
            topk_plugin.sparsify(alone, list(s.layers), op="stats-norm", strength=s.strength)
        else:
            topk_plugin.sparsify(alone, list(s.layers), s.k, fill="shift")
        expected = topk_plugin.calibrate(alone, batches)
        as_lists = {layer: {"mean": v[0].tolist(), "std": v[1].tolist()} if isinstance(v, tuple) else v.tolist()
                    for layer, v in expected.items()}
        assert constants[s] == as_lists, s
    # a single layer's constants do not depend on the strength; a later layer's do (it sees the op before it)
    assert constants[settings[0]] == constants[settings[1]]
    assert constants[settings[3]]["1"] == constants[settings[0]]["1"]
    assert constants[settings[3]]["3"] != constants[settings[2]]["3"]
    assert constants[settings[3]]["3"] != constants[settings[4]]["3"]


def test_cached_equals_naive_equals_the_public_path(data):  # noqa: F811
    cue, imagenet = data
    model = tiny_classifier()
    settings = [Setting(("1",), op="stats-norm", strength=0.5), Setting(("3", "6"), op="stats-norm", strength=1.0)]
    constants = calibrate_settings(model, settings, _batches(imagenet, model))
    kw = dict(batch_size=5, workers=0, progress=False, calibration=constants)
    _, cached, _ = evaluate_settings(model, settings, cue, imagenet, cache=True, **kw)
    _, naive, _ = evaluate_settings(model, settings, cue, imagenet, cache=False, **kw)
    assert cached == naive
    for s in settings:  # sparsify with the constants as a user would, and the evaluators
        layers = {layer: {"strength": s.strength, **constants[s][layer]} for layer in s.layers}
        with topk_plugin.sparsified(model, layers, op="stats-norm"):
            sb = evaluate_model(model, cue, batch_size=5, workers=0, progress=False).result.shape_bias
            top1 = evaluate_imagenet(model, imagenet, batch_size=5, workers=0, progress=False).top1
        assert (cached[s].shape_bias, cached[s].imagenet_top1) == (sb, top1), s


def test_two_families_fronts_bests_comparison_and_the_control_spec(data, tmp_path):  # noqa: F811
    cue_s, in_s = cue, imagenet = data
    report = (cue, imagenet)  # the tiny set is too small to halve: report on the same images, a second pass
    result = search_placement(tiny_classifier(), cue_s, in_s, report=report, holdout={"seed": 0}, **KW)
    families = {s.family for s in result.evaluated}
    assert families == {"topk", "stats-norm"}
    controls = [s for s in result.evaluated if s.family == "stats-norm"]
    assert {s.strength for s in controls} == {0.5, 1.0} and any(len(s.layers) == 2 for s in controls)
    assert len([s for s in controls if len(s.layers) == 1]) == 2 * len(result.candidates)  # same candidate layers
    for family in ("topk", "stats-norm"):  # each family's front and best, among its own settings only
        mine = {s: v for s, v in result.evaluated.items() if s.family == family}
        assert result.fronts[family] == [s for s in pareto_front({**mine, None: result.dense}) if s is not None]
        assert result.bests[family] == max(mine, key=lambda s, mine=mine: (mine[s].shape_bias, mine[s].imagenet_top1))
    assert (result.front, result.best) == (result.fronts["topk"], result.bests["topk"])
    assert all(s.family == "topk" for s in result.controls)  # random-K is Top-K's control of positions
    # the paired difference on the held-out images, against the bootstrap on those images directly
    summary = result.to_json()
    t, c = result.bests["topk"], result.bests["stats-norm"]
    paired = scores_with_intervals(result.report[c], report[0].label_pairs(), result.report[t], seed=0)
    assert summary["comparison"]["held_out"] == {k: v for k, v in paired.items() if k.startswith("delta_")}
    assert summary["comparison"]["held_out"]["delta_shape_bias"] == pytest.approx(
        result.report[c].shape_bias - result.report[t].shape_bias)
    assert summary["comparison"]["held_out"]["delta_top1"] == pytest.approx(
        result.report[c].imagenet_top1 - result.report[t].imagenet_top1)
    assert summary["comparison"]["control_best"] == {"layers": list(c.layers), "op": "stats-norm", "strength": c.strength}
    assert set(summary["families"]) == {"topk", "stats-norm"}
    assert summary["families"]["stats-norm"]["best"]["strength"] == c.strength
    assert "topk" not in summary["families"]["stats-norm"]["best"]
    assert all(s in result.report for s in result.fronts["stats-norm"])
    # the control's best as a spec reproduces its scores from a fresh model
    spec = topk_plugin.load_placement(result.best_spec("stats-norm").save(tmp_path / "control.json"))
    assert spec.op == "stats-norm" and set(spec.stats) == set(c.layers)
    model = topk_plugin.sparsify(tiny_classifier(), spec)
    sb = evaluate_model(model, cue_s, batch_size=5, workers=0, progress=False).result.shape_bias
    top1 = evaluate_imagenet(model, in_s, batch_size=5, workers=0, progress=False).top1
    assert (sb, top1) == (result.evaluated[c].shape_bias, result.evaluated[c].imagenet_top1)
    assert all(p.exists() for p in result.plot(tmp_path / "front.png"))


def test_a_topk_only_search_has_no_families_section(data):  # noqa: F811
    cue, imagenet = data
    result = search_placement(tiny_classifier(), cue, imagenet, **{**KW, "ops": ("topk",), "control": False})
    summary = result.to_json()
    assert "families" not in summary and "comparison" not in summary
    assert all(s.op == "topk" for s in result.evaluated)


def test_interrupted_two_family_search_resumes_to_the_same_json(data, tmp_path, monkeypatch):  # noqa: F811
    from topk_plugin.search import search as search_module

    cue, imagenet = data
    (cue_s, in_s), report = holdout_split(cue, imagenet, seed=0)
    kw = dict(KW, report=report, holdout={"seed": 0})
    whole = search_placement(tiny_classifier(), cue_s, in_s, checkpoint=tmp_path / "whole.json", **kw)
    real = search_module.evaluate_settings
    monkeypatch.setattr(search_module, "evaluate_settings", crash_in_phase_two(real))
    with pytest.raises(KeyboardInterrupt):
        search_placement(tiny_classifier(), cue_s, in_s, checkpoint=tmp_path / "ck.json", **kw)
    monkeypatch.setattr(search_module, "evaluate_settings", real)
    resumed = search_placement(tiny_classifier(), cue_s, in_s, checkpoint=tmp_path / "ck.json", resume=True, **kw)
    assert resumed.calibration == whole.calibration

    def scores(result):  # as text: NaN (no shape or texture decision) compares equal to itself
        return json.dumps({**result.to_json(), "timing": None}, sort_keys=True)

    assert scores(resumed) == scores(whole)
    with pytest.raises(ValueError, match="other settings.*strengths"):
        search_placement(tiny_classifier(), cue_s, in_s, checkpoint=tmp_path / "ck.json", resume=True,
                         **{**kw, "strengths": (0.5,)})


def test_bad_ops_and_strengths_are_named(data):  # noqa: F811
    cue, imagenet = data
    with pytest.raises(ValueError, match="ops \\['random'\\] must be one or more of 'topk', 'stats-norm'"):
        search_placement(tiny_classifier(), cue, imagenet, **{**KW, "ops": ("random",)})
    with pytest.raises(ValueError, match="strength=0 must lie in"):
        search_placement(tiny_classifier(), cue, imagenet, **{**KW, "strengths": (0,)})
