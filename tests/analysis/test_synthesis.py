"""Texture synthesis and reconstruction on a tiny net and 32 px images, a few steps."""
import pytest
import torch
from reference import reference_k, reference_topk

from topk_plugin.analysis import (
    RECONSTRUCT_CONDITIONS,
    TEXTURE_CONDITIONS,
    FeatureExtractor,
    reconstruct,
    texture_synthesis,
)

from .conftest import TINY_LAYERS, tiny_net

FAST = dict(layers=TINY_LAYERS, topk=0.1, steps=3, inner_iters=4, size=None, progress=False)


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


def test_losses_decrease(run):
    _, _, result = run
    for cond, losses in result.losses.items():
        assert len(losses) == FAST["steps"] + 1
        assert losses[-1] < 0.9 * losses[0], cond
        assert all(b <= a + 1e-6 for a, b in zip(losses, losses[1:])), cond  # L-BFGS with line search


def test_masks_have_the_intended_sparsity(run):
    fn, image, result = run
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
    fn, _, result = run
    paths = result.save(tmp_path, "tiny")
    from PIL import Image

    with Image.open(paths["grid"]) as grid:
        assert grid.width > 4 * 32  # target + three conditions side by side
    for cond, p in paths["images"].items():
        with Image.open(p) as im:
            assert im.size == (32, 32)
    import json

    summary = json.loads(open(paths["json"]).read())
    for cond in result.images:
        s = summary["conditions"][cond]
        assert {"ssim", "edge_correlation", "gram_distance", "color_histogram_distance"} <= s.keys()
        assert -1 <= s["ssim"] <= 1 and 0 <= s["color_histogram_distance"] <= 1 and s["gram_distance"] >= 0


def _reference_features(net, x):
    with torch.no_grad():
        return FeatureExtractor(net, TINY_LAYERS)(x)


@pytest.fixture
def seen(monkeypatch) -> dict:
    """``{condition: (loss the optimiser would see at a fixed random image, that image)}``."""
    losses = {}

    def capture(loss_fn, shape, **kw):
        x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
        losses[kw["desc"].split()[1]] = (loss_fn(x).item(), x)
        return x, [1.0, 0.5]

    monkeypatch.setattr("topk_plugin.analysis.common.optimize_image", capture)
    return losses


def test_texture_loss_is_gram_matching_of_masked_activations(target, seen):
    """The loss the optimiser sees, recomputed with einsum and the brute-force Top-K reference."""
    net = tiny_net()
    texture_synthesis(target, net, layers=TINY_LAYERS, topk=0.1, size=None, progress=False)
    ft = _reference_features(net, target)
    views = {"all": lambda t: t, "without_topk": lambda t: reference_topk(t, 0.1, invert=True),
             "topk_only": lambda t: reference_topk(t, 0.1)}
    for cond, view in views.items():
        value, x = seen[cond]
        fx = _reference_features(net, x)
        expected = 0.0
        for name in TINY_LAYERS:
            gram = lambda t: torch.einsum("nchw,ndhw->ncd", t, t) / t[0, 0].numel()
            gx, gt = gram(view(fx[name].double())), gram(view(ft[name].double()))
            expected += ((gx - gt) ** 2).sum() / (gram(ft[name].double()) ** 2).sum()
        assert value == pytest.approx(float(expected) / len(TINY_LAYERS), rel=1e-4), cond


def test_reconstruction_masks_the_target_only(target, seen):
    net = tiny_net()
    reconstruct(target, net, layers=TINY_LAYERS, topk=0.1, size=None, progress=False)
    ft = _reference_features(net, target)
    views = {"identity": lambda t: t, "non_topk": lambda t: reference_topk(t, 0.1, invert=True),
             "topk": lambda t: reference_topk(t, 0.1)}
    for cond, view in views.items():
        value, x = seen[cond]
        fx = _reference_features(net, x)  # the image's own activations: never masked
        expected = sum(
            ((fx[n].double() - view(ft[n].double())) ** 2).sum() / (ft[n].double() ** 2).sum() for n in TINY_LAYERS
        )
        assert value == pytest.approx(float(expected) / len(TINY_LAYERS), rel=1e-4), cond


def test_adam_option_and_bad_options(target):
    result = reconstruct(target, tiny_net(), layers=TINY_LAYERS, conditions=("topk",), optimizer="adam",
                         steps=5, lr=0.1, size=None, progress=False)
    assert result.losses["topk"][-1] < result.losses["topk"][0]
    with pytest.raises(ValueError, match="optimizer"):
        reconstruct(target, tiny_net(), layers=TINY_LAYERS, optimizer="sgd", size=None, progress=False)
    with pytest.raises(ValueError, match="condition"):
        texture_synthesis(target, tiny_net(), layers=TINY_LAYERS, conditions=("topk",), size=None, progress=False)
    with pytest.raises(ValueError, match="fraction"):
        texture_synthesis(target, tiny_net(), layers=TINY_LAYERS, topk=1.5, size=None, progress=False)


def test_degenerate_layer_warns(target):
    with pytest.warns(UserWarning, match="keeps all of them"):
        reconstruct(target, tiny_net(), layers=["7"], topk=64, conditions=("identity",), steps=1,
                    inner_iters=1, size=None, progress=False)
