"""Placement search: cached prefix == from scratch, eligible layers, the front, the budget, the spec."""
import pytest
import torch
from shape_bias.test_dataset import make_set
from torch import nn

import topk_plugin
from topk_plugin.search import (
    PrefixRunner,
    Scores,
    Setting,
    best_within_budget,
    eligible_layers,
    evaluate_settings,
    pareto_front,
    search_placement,
)
from topk_plugin.shape_bias.categories import category_indices
from topk_plugin.shape_bias.dataset import CueConflictDataset
from topk_plugin.shape_bias.evaluate import evaluate_model
from topk_plugin.shape_bias.imagenet import ImageNetImages, eval_transform, evaluate_imagenet, imagenet_wnids


def tiny_classifier() -> nn.Sequential:
    """16 px in, 1000 ImageNet logits out; in-place ReLUs, as in AlexNet/SqueezeNet."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 1000),
    )
    # the head mixes the 16 features into the 16 categories' ImageNet indices, so the
    # 16-class decision depends on the image and settings change decisions image by image
    mixing = torch.randn(16, 16, generator=torch.Generator().manual_seed(1)) * 100
    with torch.no_grad():
        typical = net[:-1](torch.rand(64, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 4 - 2).mean(0)
        net[-1].weight.normal_(0, 0.01)
        net[-1].bias.zero_()
        for j, indices in enumerate(category_indices().values()):
            net[-1].weight[indices] = mixing[j]
            net[-1].bias[indices] = -(mixing[j] @ typical)  # centred: the image decides
    net.pretrained_cfg = dict(input_size=(3, 16, 16), crop_pct=1.0, interpolation="bilinear",
                              mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    return net.eval()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    cue = CueConflictDataset(make_set(root / "cue", per_category=2, size=16), per_category=2)
    import numpy as np
    from PIL import Image

    # ImageNet images labelled with the dense model's own prediction: dense top-1 is 1.0
    # and every setting that changes a prediction lowers it
    rng = np.random.default_rng(1)
    model, wnids = tiny_classifier(), imagenet_wnids()
    (root / "imagenet").mkdir()
    for i in range(12):
        image = Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8))
        x = (eval_transform(model)(image).float()[None] / 255 - 0.5) / 0.25
        with torch.no_grad():
            label = model(x).argmax().item()
        image.save(root / "imagenet" / f"{wnids[label]}_{i}.png")
    imagenet = ImageNetImages(root / "imagenet", eval_transform(model))
    return cue, imagenet


SETTINGS = [
    Setting(("0",), 0.1), Setting(("3",), 0.25), Setting(("6",), 0.5),
    Setting(("1", "6"), 0.2), Setting(("3", "4"), 3), Setting(("1",), 1.0),
]


def test_cached_equals_naive_equals_from_scratch(data):
    cue, imagenet = data
    model = tiny_classifier()
    kw = dict(batch_size=5, workers=0, progress=False)
    dense, cached, _ = evaluate_settings(model, SETTINGS, cue, imagenet, cache=True, **kw)
    dense2, naive, _ = evaluate_settings(model, SETTINGS, cue, imagenet, cache=False, **kw)
    assert dense == dense2 and cached == naive  # per-image decisions and hits included
    none, partial, _ = evaluate_settings(model, SETTINGS, cue, imagenet, cache=True, dense=False, **kw)
    assert none is None and partial == cached  # the walk may stop early without the dense output
    for s in SETTINGS:  # the public path: sparsified() + the evaluators
        with topk_plugin.sparsified(model, list(s.layers), s.k):
            sb = evaluate_model(model, cue, batch_size=5, workers=0, progress=False).result
            top1 = evaluate_imagenet(model, imagenet, batch_size=5, workers=0, progress=False).top1
        assert (cached[s].shape_bias, cached[s].imagenet_top1) == (sb.shape_bias, top1), s
    sb = evaluate_model(model, cue, batch_size=5, workers=0, progress=False).result
    assert dense.shape_bias == sb.shape_bias and dense.imagenet_top1 == 1.0
    assert len({v.decisions for v in cached.values()}) > 3  # the settings matter, image by image


def test_random_control_cached_equals_naive(data):
    cue, imagenet = data
    settings = [Setting(("1",), 0.2, "random"), Setting(("3", "6"), 0.25, "random")]
    kw = dict(batch_size=5, workers=0, progress=False, seed=3)
    _, cached, _ = evaluate_settings(tiny_classifier(), settings, cue, imagenet, cache=True, **kw)
    _, naive, _ = evaluate_settings(tiny_classifier(), settings, cue, imagenet, cache=False, **kw)
    _, other, _ = evaluate_settings(tiny_classifier(), settings, cue, imagenet, cache=True, **{**kw, "seed": 4})
    assert cached == naive
    assert cached != other  # the seed matters


def test_prefix_runner_through_residual_blocks():
    model = topk_plugin.create_model("tv:resnet18").eval()
    x = torch.randn(2, 3, 64, 64)
    layers = eligible_layers(model, x)
    assert layers == ["layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1", "layer4.0", "layer4.1"]
    runner = PrefixRunner(model, layers)
    with torch.no_grad():
        for layer, state in runner.walk(x):
            if layer is None:
                assert torch.equal(state, model(x))
                break
            with topk_plugin.sparsified(model, [layer, "layer4.1"] if layer != "layer4.1" else [layer], 0.1):
                expected = model(x)
            with topk_plugin.sparsified(model, ["layer4.1"] if layer != "layer4.1" else [], 0.1) if layer != "layer4.1" else torch.no_grad():
                got = runner.tail(layer, state, topk_plugin.spatial_topk(runner.value(layer, state), 0.1))
            assert torch.equal(got, expected), layer


def test_eligible_layers_skip_heads_noops_and_containers():
    model = topk_plugin.create_model("tv:squeezenet1_1").eval()
    layers = eligible_layers(model, torch.randn(1, 3, 64, 64))
    assert layers == [f"features.{i}" for i in range(13)]  # not classifier.* (head), not Dropout
    assert eligible_layers(tiny_classifier(), torch.randn(1, 3, 16, 16)) == ["0", "1", "2", "3", "4", "5", "6"]


def _s(sb, top1, near=False):
    return Scores(sb, 0.5, 0.2, top1, near)


def test_front_and_budget_against_brute_force():
    points = {"a": _s(0.3, 0.80), "b": _s(0.5, 0.78), "c": _s(0.45, 0.70), "d": _s(0.7, 0.50), "e": _s(0.5, 0.78),
              "f": _s(0.9, 0.02, near=True)}
    front = pareto_front(points)
    assert front == ["a", "b", "e", "d", "f"]  # c is beaten by b; b and e tie
    assert best_within_budget(points, 0.80, 5) in ("b", "e")
    assert best_within_budget(points, 0.80, 1) == "a"
    assert best_within_budget(points, 0.80, 100) == "f"  # the budget is the only rule
    assert best_within_budget({"x": _s(0.6, 0.1)}, 0.8, 5) is None


def test_search_result_and_spec(data, tmp_path):
    cue, imagenet = data
    model = tiny_classifier()
    result = search_placement(model, cue, imagenet, name="tiny", topks=(0.25, 0.5), max_layers=2, beam=2, budget=100,
                              batch_size=6, workers=0, progress=False)
    assert result.candidates == ["0", "1", "2", "3", "4", "5", "6"]
    singles = [s for s in result.evaluated if len(s.layers) == 1]
    assert len(singles) == 14 and any(len(s.layers) == 2 for s in result.evaluated)
    points = {**result.evaluated, None: result.dense}
    assert set(result.front) == set(pareto_front(points)) - {None}
    summary = result.to_json()
    assert set(summary) >= {"dense", "front", "best", "evaluated"}
    for row in summary["front"]:
        assert {"layers", "topk", "shape_bias", "shape_or_texture", "imagenet_top1"} <= set(row)
        assert row["control"]["op"] == "random"
    assert result.best == max(result.evaluated, key=lambda s: (result.evaluated[s].shape_bias,
                                                               result.evaluated[s].imagenet_top1))  # budget 100
    spec = result.best_spec()
    path = spec.save(tmp_path / "best.json")
    loaded = topk_plugin.load_placement(path)
    assert loaded == spec and set(loaded.layers) == set(result.best.layers)
    assert loaded.provenance["shape_bias"] == result.evaluated[result.best].shape_bias
    sparse = topk_plugin.sparsify(tiny_classifier(), path)
    assert {n: m.k for n, m in topk_plugin.sparsified_layers(sparse).items()} == loaded.layers
    assert all(p.exists() for p in result.plot(tmp_path / "front.png"))


def crash_in_phase_two(real):
    """``evaluate_settings`` that is interrupted on its second call, as by Ctrl-C."""
    calls = []

    def evaluate(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    return evaluate


def test_interrupted_search_resumes_to_the_same_result(data, tmp_path, monkeypatch):
    from topk_plugin.search import search as search_module

    cue, imagenet = data
    kw = dict(name="tiny", topks=(0.25, 0.5), max_layers=2, beam=2, budget=100, batch_size=6, workers=0, progress=False)
    whole = search_placement(tiny_classifier(), cue, imagenet, **kw)
    checkpoint = tmp_path / "search.checkpoint.json"
    real, calls = search_module.evaluate_settings, []
    monkeypatch.setattr(search_module, "evaluate_settings", crash_in_phase_two(real))
    with pytest.raises(KeyboardInterrupt):
        search_placement(tiny_classifier(), cue, imagenet, checkpoint=checkpoint, **kw)
    assert checkpoint.exists()  # the singles phase is saved
    calls.clear()
    monkeypatch.setattr(search_module, "evaluate_settings", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    resumed = search_placement(tiny_classifier(), cue, imagenet, checkpoint=checkpoint, resume=True, **kw)
    assert len(calls) == 2  # combinations and controls only
    assert resumed.to_json()["evaluated"] == whole.to_json()["evaluated"]
    assert (resumed.dense, resumed.front, resumed.best, resumed.controls) == (whole.dense, whole.front, whole.best,
                                                                               whole.controls)
    calls.clear()
    search_placement(tiny_classifier(), cue, imagenet, checkpoint=checkpoint, resume=True, **kw)
    assert calls == []  # everything was done
    with pytest.raises(ValueError, match="other settings.*topks"):
        search_placement(tiny_classifier(), cue, imagenet, checkpoint=checkpoint, resume=True, **{**kw, "topks": (0.5,)})


def test_bootstrap_intervals_follow_the_seed(data):
    """The search's ``seed`` also seeds its bootstrap intervals (as ``shape-bias --seed`` does), and is recorded."""
    from topk_plugin.shape_bias.intervals import cue_conflict_intervals, top1_intervals

    cue, imagenet = data
    kw = {"name": "tiny", "topks": (0.5,), "candidates": ["3"], "max_layers": 1, "budget": 100, "control": False,
          "batch_size": 6, "workers": 0, "progress": False}
    for seed in (0, 7):
        result = search_placement(tiny_classifier(), cue, imagenet, seed=seed, **kw)
        summary = result.to_json()
        assert summary["seed"] == seed
        labels = cue.label_pairs()
        expected = {**cue_conflict_intervals(result.dense.decisions, labels, seed=seed),
                    **top1_intervals(result.dense.hits, seed=seed)}
        assert {k: summary["dense"][k] for k in expected} == expected
        (setting,) = result.evaluated
        paired = {**cue_conflict_intervals(result.evaluated[setting].decisions, labels, result.dense.decisions,
                                           seed=seed),
                  **top1_intervals(result.evaluated[setting].hits, result.dense.hits, seed=seed)}
        assert {k: summary["evaluated"][0][k] for k in paired} == paired
