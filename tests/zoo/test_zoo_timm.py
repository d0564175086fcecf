"""The variants as timm names: listing, kwargs, features_only, pretrained loading."""
import pytest
import timm
import torch
from reference import reference_k

import topk_plugin.zoo as zoo
from topk_plugin import sparsified_layers


def _x(size=64, n=1):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0))


def test_listed(registered):
    names = timm.list_models("*topk*")
    assert set(names) == set(registered["timm"])
    assert len(names) == len(zoo.TIMM) * len(zoo.EAGER_PCTS) * 2
    assert {"resnet18_topk20", "resnet18_topk20mean", "vit_small_patch16_224_topk5", "tf_efficientnet_lite0_topk10"} <= set(names)
    pretrained = timm.list_pretrained("*topk*")
    assert "resnet18_topk20.a1_in1k" in pretrained and "convnext_tiny_topk50mean.fb_in1k" in pretrained


def test_variant_reuses_base_pretrained_cfgs():
    base = timm.models.get_arch_pretrained_cfgs("resnet18")
    variant = timm.models.get_arch_pretrained_cfgs("resnet18_topk20")
    assert [k.split(".", 1)[1] for k in variant] == [k.split(".", 1)[1] for k in base]
    for (_, b), (_, v) in zip(base.items(), variant.items(), strict=True):
        assert (v.hf_hub_id, v.url, v.mean, v.std) == (b.hf_hub_id, b.url, b.mean, b.std)
        assert v.architecture == "resnet18_topk20"


def test_register_all_is_idempotent(recwarn):
    before = timm.list_models("*topk*")
    assert zoo.register_all() == zoo.registered_names()
    assert timm.list_models("*topk*") == before
    assert not [w for w in recwarn if "Overwriting" in str(w.message)]


def test_num_classes_and_mode():
    model = timm.create_model("resnet18_topk30mean", num_classes=7)
    assert model(_x()).shape == (1, 7)
    (topk,) = sparsified_layers(model).values()
    assert (topk.k, topk.mode) == (0.3, "mean")
    assert model.pretrained_cfg["architecture"] == "resnet18_topk30mean"


def _assert_sparse(t: torch.Tensor, k, channel_dim=1):
    rows = t.movedim(channel_dim, 1).flatten(2)
    kk = reference_k(k, rows.shape[2])
    assert kk < rows.shape[2]
    assert int((rows != 0).sum(2).max()) <= kk


@pytest.mark.parametrize(
    "name, index, kwargs",
    [
        ("resnet18_topk20", 2, {}),  # FeatureListNet, layer2 kept as is
        ("convnext_tiny_topk10", 1, {}),  # FeatureListNet flattens stages.1 -> stages_1
        ("efficientnet_lite0_topk10", 2, {}),  # EfficientNetFeatures
        ("vgg16_topk5", 1, {}),  # flattened features_N; feature 1 (features.8) follows pool features.4
    ],
)
def test_features_only_keeps_topk(name, index, kwargs):
    base = name.rsplit("_topk", 1)[0]
    model = timm.create_model(name, features_only=True, **kwargs)
    dense = timm.create_model(base, features_only=True, **kwargs)
    dense.load_state_dict(model.state_dict())
    model.eval(), dense.eval()
    with torch.no_grad():
        feats, dense_feats = model(_x()), dense(_x())
    assert model.topk_variant["applied"] and not model.topk_variant["skipped"]
    k = model.topk_variant["k"]
    if not name.startswith("vgg16"):  # vgg's pools are no feature outputs: only the change shows
        _assert_sparse(feats[index], k)
    assert not torch.equal(feats[index], dense_feats[index])
    for i in range(index):
        assert torch.equal(feats[i], dense_feats[i]), f"feature {i} before the placement changed"


def test_features_only_skips_dropped_stages():
    model = timm.create_model("resnet18_topk20", features_only=True, out_indices=(1,))
    assert model.topk_variant["skipped"] == ["layer2"] and not sparsified_layers(model)


def test_vit_token_topk():
    model = timm.create_model("vit_small_patch16_224_topk10", img_size=64)
    block = model.blocks[6]
    seen = {}
    block.register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
    with torch.no_grad():
        model(_x())
    out = seen["out"]
    assert out.shape == (1, 1 + 16, 384)  # class token + 4x4 patches
    _assert_sparse(out, 0.1, channel_dim=-1)  # over all 17 tokens, class token included
    assert set(sparsified_layers(model)) == {"blocks.6"}
    feats = timm.create_model("vit_small_patch16_224_topk10", img_size=64, features_only=True)
    assert feats.topk_variant["applied"] == ["model.blocks.6"]


def test_pretrained_file_overlay_and_weights_path(tmp_path):
    torch.manual_seed(3)
    base = timm.create_model("resnet18")
    path = tmp_path / "resnet18.pth"
    torch.save(base.state_dict(), path)
    expected = base.state_dict()
    via_timm = timm.create_model("resnet18_topk20", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    via_zoo = zoo.create_model("resnet18_topk20", weights_path=path, weights_sha256=zoo.weights.sha256_of(path))
    for model in (via_timm, via_zoo):
        state = model.state_dict()
        assert list(state) == list(expected)
        assert all(torch.equal(state[key], expected[key]) for key in expected)
        assert set(sparsified_layers(model)) == {"layer2"}
    head = zoo.create_model("resnet18_topk20", weights_path=path, num_classes=10)  # timm drops the old classifier
    state = head.state_dict()
    assert state["fc.weight"].shape == (10, 512)
    assert all(torch.equal(state[key], expected[key]) for key in expected if not key.startswith("fc."))
