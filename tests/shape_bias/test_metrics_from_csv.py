"""Shape bias from the public CSVs reproduces the published numbers (SPEC section 3)."""
import math

import pytest

from topk_plugin.shape_bias.metrics import Trial, labels_from_filename, shape_bias
from topk_plugin.shape_bias.mvh_csv import read_trials

MVH = "data/modelvshuman-raw/cue-conflict"
TVS = "data/texture-vs-shape-raw"


@pytest.mark.parametrize(
    "files, expected",
    [
        ([f"{MVH}/cue-conflict_subject-{i:02d}_session_1.csv" for i in range(1, 11)], "0.9587"),
        ([f"{MVH}/cue-conflict_resnet50_session-1.csv"], "0.2142"),
        ([f"{MVH}/cue-conflict_bagnet33_session-1.csv"], "0.0511"),
        ([f"{MVH}/cue-conflict_simclr-resnet50x1_session-1.csv"], "0.3879"),
        ([f"{TVS}/style-transfer-512-nomask-experiment_alexnet_session-1.csv"], "0.2531"),
        ([f"{TVS}/style-transfer-512-nomask-experiment_vgg16_session-1.csv"], "0.0921"),
        ([f"{MVH}/cue-conflict_AlexNet-normal_session-1.csv"], "0.239"),
        ([f"{MVH}/cue-conflict_AlexNet-topK-10_session-1.csv"], "0.72"),
        ([f"{MVH}/cue-conflict_VGG-normal_session-1.csv"], "0.08"),
        ([f"{MVH}/cue-conflict_VGG-topK-5_session-1.csv"], "0.584"),
    ],
    ids=["humans", "resnet50", "bagnet33", "simclr", "tvs-alexnet", "tvs-vgg16", "paper-alexnet", "paper-alexnet-topk10", "paper-vgg16", "paper-vgg16-topk5"],
)
def test_published_shape_bias(shared_dir, files, expected):
    """Within 0.0005, or half a unit of the last digit published (the paper's 0.72, 0.08)."""
    decimals = len(expected.split(".")[1])
    tolerance = max(0.0005, 0.5 * 10**-decimals)
    trials = [t for f in files for t in read_trials(shared_dir / f)]
    result = shape_bias(trials)
    assert result.shape_bias == pytest.approx(float(expected), abs=tolerance)
    assert result.n_images == 1280 * len(files)
    assert result.n_conflict == 1200 * len(files)
    assert not result.near_chance


def _trials(decide):
    """Every conflict stimulus name of the real set, decided by ``decide(shape, texture)``."""
    from topk_plugin.shape_bias.categories import CATEGORIES

    trials = []
    for shape in CATEGORIES:
        for i, texture in enumerate([t for t in CATEGORIES if t != shape] * 5):
            trials.append(Trial(f"{shape}{i}-{texture}1.png", shape, texture, decide(shape, texture)))
    return trials


def test_definitions_on_constructed_decisions():
    assert shape_bias(_trials(lambda s, t: s)).shape_bias == 1.0
    assert shape_bias(_trials(lambda s, t: t)).shape_bias == 0.0
    mixed = shape_bias(_trials(lambda s, t: s if s < t else t))
    assert 0 < mixed.shape_bias < 1 and mixed.shape_or_texture == 1.0
    assert mixed.per_category["airplane"] == 1.0 and mixed.per_category["truck"] == 0.0


def test_constant_answer_sits_exactly_at_chance():
    """A network that always says 'cat' scores 0.5 with a 0.125 shape-or-texture fraction."""
    result = shape_bias(_trials(lambda s, t: "cat"))
    assert result.shape_bias == 0.5
    assert result.shape_or_texture == pytest.approx(0.125)
    assert result.near_chance
    assert result.shape_hits == result.texture_hits == 75


def test_na_and_other_answers_are_neither():
    trials = [Trial("a1-b1.png", "cat", "dog", None), Trial("a2-b1.png", "cat", "dog", "knife"), Trial("c1-c2.png", "cat", "cat", "cat")]
    result = shape_bias(trials)
    assert math.isnan(result.shape_bias) and result.shape_or_texture == 0 and result.n_conflict == 2
    assert result.accuracy == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    "name, labels",
    [
        ("airplane1-bicycle2.png", ("airplane", "bicycle")),
        ("0001_s5n_dnn_0_airplane_00_airplane1-chair2.png", ("airplane", "chair")),
        ("cue-conflict/knife/knife10-oven3.png", ("knife", "oven")),
    ],
)
def test_labels_from_filename(name, labels):
    assert labels_from_filename(name) == labels


def test_bad_csv_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("subj,foo\nx,1\n")
    with pytest.raises(ValueError, match="missing columns"):
        read_trials(bad)
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_trials(tmp_path / "nope.csv")
    misnamed = tmp_path / "m.csv"
    misnamed.write_text("subj,session,trial,rt,object_response,category,condition,imagename\nm,1,1,NaN,cat,cat,NaN,picture.png\n")
    with pytest.raises(ValueError, match="line 2.*picture.png"):
        read_trials(misnamed)
