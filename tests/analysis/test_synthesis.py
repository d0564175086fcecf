"""Texture synthesis and reconstruction on a tiny net and 32 px images, a few evaluations."""
import pytest
import torch
from reference import reference_k

from topk_plugin.analysis import (
    RECONSTRUCT_CONDITIONS,
    TEXTURE_CONDITIONS,
    FeatureExtractor,
    reconstruct,
    texture_synthesis,
)
from topk_plugin.analysis.convergence import StopRule

from .conftest import TINY_LAYERS, tiny_net

FAST = {"layers": TINY_LAYERS, "topk": 0.1, "max_evals": 40, "window": 10, "size": None, "progress": False}


@pytest.fixture(scope="module", params=["texture", "reconstruct"])
def run(request):
    g = torch.Generator().manual_seed(1)
    image = torch.rand(1, 3, 32, 32, generator=g)
    image[:, :, 8:20, 8:20] = 0.9
    fn = texture_synthesis if request.param == "texture" else reconstruct
    result = fn(image, tiny_net(), seed=3, **FAST)
    return fn, image, result


def test_every_condition_gives_an_image_of_the_target_size(run):
    fn, image, result = run
    expected = TEXTURE_CONDITIONS if fn is texture_synthesis else RECONSTRUCT_CONDITIONS
    assert tuple(result.images) == expected
    for im in result.images.values():
        assert im.shape == image.shape
        assert 0 <= im.min() and im.max() <= 1
    torch.testing.assert_close(result.target, image)


def test_losses_decrease_and_the_run_is_recorded(run):
    _, _, result = run
    for cond, losses in result.losses.items():
        o = result.optimisation[cond]
        assert len(losses) == o["evals"] <= FAST["max_evals"]
        assert o["loss_final"] == min(losses) < 0.9 * losses[0], cond
        assert o["converged"] == (o["evals"] < FAST["max_evals"])
    assert result.config["stop_rule"] == {"tol": StopRule.tol, "window": 10, "max_evals": 40, "plateaus": StopRule.plateaus}
    assert result.not_converged == [c for c in result.images if not result.optimisation[c]["converged"]]


def test_masks_have_the_intended_sparsity(run):
    _, image, result = run
    feats = _reference_features(tiny_net(), image)
    names = {c: ("non" if "non" in c or "without" in c else "topk" if "topk" in c else "all") for c in result.images}
    for cond, which in names.items():
        for layer, fraction in result.kept_fraction[cond].items():
            positions = feats[layer][0, 0].numel()
            k = reference_k(0.1, positions)
            expected = {"all": 1.0, "topk": k / positions, "non": 1 - k / positions}[which]
            assert fraction == pytest.approx(expected, abs=1e-6), (cond, layer)
            assert result.config["k_per_layer"][layer]["k"] == k


def test_same_seed_same_image_other_seed_other_image(run):
    fn, image, result = run
    again = fn(image, tiny_net(), seed=3, **FAST)
    other = fn(image, tiny_net(), seed=4, **FAST)
    for cond in result.images:
        assert torch.equal(again.images[cond], result.images[cond])
        assert not torch.equal(other.images[cond], result.images[cond])


def test_scores_and_outputs(run, tmp_path):
    _, _, result = run
    paths = result.save(tmp_path, "tiny")
    from PIL import Image

    with Image.open(paths["grid"]) as grid:
        assert grid.width > 4 * 32  # target + three conditions side by side
    for cond, p in paths["images"].items():
        with Image.open(p) as im:
            assert im.size == (32, 32), cond
    import json

    with open(paths["json"]) as f:
        summary = json.load(f)
    for cond in result.images:
        s = summary["conditions"][cond]
        assert {"ssim", "edge_correlation", "gram_distance", "color_histogram_distance", "evals", "converged"} <= s.keys()
        assert len(summary["losses"][cond]) == s["evals"]
        assert -1 <= s["ssim"] <= 1 and 0 <= s["color_histogram_distance"] <= 1 and s["gram_distance"] >= 0


def _reference_features(net, x):
    with torch.no_grad():
        return FeatureExtractor(net, TINY_LAYERS)(x)


def test_lbfgs_option_and_bad_options(target):
    result = reconstruct(target, tiny_net(), layers=TINY_LAYERS, conditions=("topk", "identity"), optimizer="lbfgs",
                         max_evals=30, size=None, progress=False)
    for cond in ("topk", "identity"):
        assert min(result.losses[cond]) < 0.5 * result.losses[cond][0]
    assert result.config["optimizer"] == "lbfgs" and result.config["lr"] == 1.0
    with pytest.raises(ValueError, match="optimizer"):
        reconstruct(target, tiny_net(), layers=TINY_LAYERS, optimizer="sgd", size=None, progress=False)
    with pytest.raises(ValueError, match="condition"):
        texture_synthesis(target, tiny_net(), layers=TINY_LAYERS, conditions=("topk",), size=None, progress=False)
    with pytest.raises(ValueError, match="fraction"):
        texture_synthesis(target, tiny_net(), layers=TINY_LAYERS, topk=1.5, size=None, progress=False)
    with pytest.raises(ValueError, match="window"):
        texture_synthesis(target, tiny_net(), layers=TINY_LAYERS, window=0, size=None, progress=False)


def test_degenerate_layer_warns(target):
    with pytest.warns(UserWarning, match="keeps all of them"):
        reconstruct(target, tiny_net(), layers=["7"], topk=64, conditions=("identity",), max_evals=1,
                    size=None, progress=False)


def test_a_float64_model_is_optimised_in_float64(target):
    net = tiny_net().double()
    seen = []
    net.register_forward_pre_hook(lambda _m, inputs: seen.append(inputs[0].dtype))
    result = reconstruct(target, net, layers=TINY_LAYERS, conditions=("topk",), max_evals=3, size=None, progress=False)
    assert set(seen) == {torch.float64} and next(net.parameters()).dtype == torch.float64
    assert result.images["topk"].dtype == torch.float32  # results as images: float32 in [0, 1]
