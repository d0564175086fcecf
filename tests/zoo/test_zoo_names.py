"""The <base>_topk<pct>[mean] grammar."""
import pytest

from topk_plugin.zoo.names import VariantName, VariantNameError, is_variant_name, parse_variant_name, variant_name


@pytest.mark.parametrize(
    "name, base, pct, mode",
    [
        ("resnet18_topk20", "resnet18", 20, "keep"),
        ("alexnet_topk10mean", "alexnet", 10, "mean"),
        ("vgg16_bn_topk5", "vgg16_bn", 5, "keep"),
        ("vit_small_patch16_224_topk100", "vit_small_patch16_224", 100, "keep"),
        ("tf_efficientnet_lite0_topk7mean", "tf_efficientnet_lite0", 7, "mean"),
    ],
)
def test_round_trip(name, base, pct, mode):
    parsed = parse_variant_name(name)
    assert parsed == VariantName(base, pct, mode)
    assert parsed.name == name == variant_name(base, pct, mode)
    assert parsed.k == pct / 100


def test_k_is_the_decimal_percent():
    assert [VariantName("m", p).k for p in (5, 10, 29, 30)] == [0.05, 0.1, 0.29, 0.3]


@pytest.mark.parametrize(
    "bad",
    ["resnet18", "resnet18_topk", "resnet18_topk0", "resnet18_topk05", "resnet18_topk101", "resnet18_topk2.5",
     "resnet18_topk20max", "_topk20", "resnet18_TOPK20"],
)
def test_rejected(bad):
    assert not is_variant_name(bad)
    with pytest.raises(VariantNameError, match="topk"):
        parse_variant_name(bad)


def test_variant_name_checks_its_arguments():
    with pytest.raises(ValueError, match="mode"):
        variant_name("resnet18", 10, "median")
    with pytest.raises(VariantNameError, match="1 to 100"):
        variant_name("resnet18", 0)
