"""The search scores dense, the front and the best on shape-only datasets: the evaluators' numbers, never used for
choosing, checkpointed and resumed."""
import pytest
from shape_bias.test_shape_only import make_shape_only

import topk_plugin
from search.test_search import data, tiny_classifier  # noqa: F401 (fixture)
from topk_plugin.search import search_placement
from topk_plugin.shape_bias.evaluate import evaluate_model
from topk_plugin.shape_bias.humans import load_humans
from topk_plugin.shape_bias.shape_only import ShapeOnlyDataset
from topk_plugin.shape_bias.shape_only_scores import human_reference, setting_scores

KW = dict(name="tiny", topks=(0.25, 0.5), max_layers=2, beam=2, budget=100, batch_size=6, workers=0, progress=False)


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    """16 px stand-ins with the real edge set's file names, so the shipped human trials pair with them."""
    return ShapeOnlyDataset(make_shape_only(tmp_path_factory.mktemp("so") / "edge", "edge", size=16), "edge")


def test_report_on_shape_only_sets(data, edge, tmp_path, monkeypatch):  # noqa: F811
    from topk_plugin.search import search as search_module

    cue, imagenet = data
    humans = {"edge": load_humans("edge")}
    plain = search_placement(tiny_classifier(), cue, imagenet, report=(cue, imagenet), **KW)
    kw = dict(KW, report=(cue, imagenet), shape_only={"edge": edge}, humans=humans, checkpoint=tmp_path / "ck.json")
    result = search_placement(tiny_classifier(), cue, imagenet, **kw)
    # never used for choosing: the same front and best as without the shape-only sets
    assert (result.front, result.best, result.evaluated) == (plain.front, plain.best, plain.evaluated)
    part = result.shape_only["edge"]
    assert set(part.settings) == set(result.front) | {result.best} | set(result.decomposition)
    model = tiny_classifier()
    dense = evaluate_model(model, edge, batch_size=7, workers=0, progress=False)
    assert part.dense.decisions == tuple(t.decision for t in dense.trials)
    best = result.best
    with topk_plugin.sparsified(model, list(best.layers), best.k, fill=best.fill):
        sparse = evaluate_model(model, edge, batch_size=7, workers=0, progress=False)
    assert part.settings[best].decisions == tuple(t.decision for t in sparse.trials)
    summary = result.to_json()
    expected = setting_scores([t.decision for t in sparse.trials], edge.image_names(), edge.categories(),
                              dense_decisions=[t.decision for t in dense.trials], humans=humans["edge"])
    assert summary["best"]["shape_only"]["edge"] == expected
    assert summary["dense"]["shape_only"]["edge"]["accuracy"] == dense.accuracy
    assert "delta_accuracy" not in summary["dense"]["shape_only"]["edge"]
    assert all("shape_only" in row for row in summary["front"] + summary["decomposition"])
    assert summary["shape_only"]["edge"] == {"root": str(edge.root), "humans": human_reference(humans["edge"])}
    rows = result.shape_only_rows()
    assert [r["setting"] for r in rows][0] == "dense" and sum(r["setting"].endswith("(best)") for r in rows) == 1
    assert all(p.stat().st_size > 0 for p in result.plot_shape_only(tmp_path / "shape_only.png"))
    # resumed: every phase, the shape-only ones too, is read back from the checkpoint, not run again
    real = search_module.evaluate_settings
    calls = []
    monkeypatch.setattr(search_module, "evaluate_settings",
                        lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    again = search_placement(tiny_classifier(), cue, imagenet, resume=True, **kw)
    assert calls == [] and again.to_json() == summary | {"timing": again.to_json()["timing"]}
    with pytest.raises(ValueError, match="other settings.*shape_only"):
        search_placement(tiny_classifier(), cue, imagenet, resume=True, **{**kw, "shape_only": {}})
