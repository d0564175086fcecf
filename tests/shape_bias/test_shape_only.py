"""The shape-only datasets: image names, folders (both layouts), locating and downloading, CSVs."""
import hashlib
import json
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from topk_plugin._paths import CACHE_ENV_VAR
from topk_plugin.shape_bias import locate
from topk_plugin.shape_bias.categories import CATEGORIES
from topk_plugin.shape_bias.datasets import DATASETS, dataset_spec
from topk_plugin.shape_bias.embedded import data_dir, embedded_dataset, embedded_humans
from topk_plugin.shape_bias.imagenames import category_of, experiment_tag, image_id
from topk_plugin.shape_bias.metrics import Trial
from topk_plugin.shape_bias.mvh_csv import csv_dataset, csv_observer, read_trials, write_trials
from topk_plugin.shape_bias.shape_only import ShapeOnlyDataset, scan_shape_only
from topk_plugin.shape_bias.stimuli import StimulusError


def make_shape_only(root, name="edge", size=8, per_category=None):
    """A synthetic shape-only set in model-vs-human's layout of ``name``, file names as the real set's."""
    spec = dataset_spec(name)
    per_category = per_category or spec.per_category
    rng = np.random.default_rng(1)
    for c, category in enumerate(CATEGORIES):
        for j in range(1, per_category + 1):
            if spec.sessions:
                path = root / "dnn" / "session-1" / f"{c * per_category + j:04d}_{spec.tag}_dnn_0_{category}_00_{category}-{j}.png"
            else:
                path = root / category / f"{category}{j}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
    return root


# --- image names ---------------------------------------------------------------------------


@pytest.mark.parametrize("name, category, tag, stimulus", [
    ("0001_edg_s01_0_oven_00_oven10.png", "oven", "edg", "oven10.png"),
    ("0002_sif_s01_0_car_00_car6.png", "car", "sif", "car6.png"),
    ("0001_ske_s01_0_boat_00_boat-0068-sketch-23.png", "boat", "ske", "boat-0068-sketch-23.png"),
    ("0001_sty_s01_0_bicycle_00_bicycle-0011-ILSVRC2012-val-00011821.png", "bicycle", "sty",
     "bicycle-0011-ILSVRC2012-val-00011821.png"),
    ("0001_edg_dnn_0_airplane_00_airplane1.png", "airplane", "edg", "airplane1.png"),  # texture-vs-shape's models
])
def test_category_is_the_fifth_field(name, category, tag, stimulus):
    assert category_of(name) == category
    assert experiment_tag(name) == tag
    assert image_id(name) == stimulus
    assert image_id(stimulus) == stimulus  # a model's plain file name is its own id


def test_plain_names_have_no_category_field():
    with pytest.raises(ValueError, match="5th|category"):
        category_of("oven10.png")
    assert experiment_tag("airplane1-bicycle2.png") is None


@pytest.mark.parametrize("dataset", ["edge", "silhouette", "sketch", "stylized"])
def test_every_human_csv_row_parses(shared_dir, dataset):
    """All four naming schemes: the 5th field is the category column, on every trial of every subject."""
    files = sorted((shared_dir / "data" / "modelvshuman-raw" / dataset).glob("*.csv"))
    assert files
    for f in files:
        assert csv_dataset(f) == dataset
        trials = read_trials(f)
        assert len(trials) == DATASETS[dataset].size
        assert all(category_of(t.image) == t.shape == t.texture for t in trials)
        assert experiment_tag(trials[0].image) == DATASETS[dataset].tag
        assert len({image_id(t.image) for t in trials}) == DATASETS[dataset].size  # one trial per stimulus


def test_texture_vs_shape_model_csvs(shared_dir):
    raw = shared_dir / "data" / "texture-vs-shape-raw"
    for f, dataset in [(raw / "edge-experiment_alexnet_session_1.csv", "edge"),
                       (raw / "silhouette-filled-experiment_vgg_session_1.csv", "silhouette"),
                       (raw / "style-transfer-512-nomask-experiment_vgg16_session-1.csv", "cue-conflict")]:
        assert csv_dataset(f) == dataset
    assert csv_observer(raw / "silhouette-filled-experiment_vgg_session_1.csv") == "vgg"
    trials = read_trials(raw / "edge-experiment_alexnet_session_1.csv")
    assert len(trials) == 160 and {image_id(t.image) for t in trials} == {
        p.name for p in embedded_dataset("edge").glob("*/*.png")}


def test_a_row_whose_name_disagrees_with_its_category_names_the_line(tmp_path):
    path = tmp_path / "edge_subject-01_session_1.csv"
    path.write_text("subj,session,trial,rt,object_response,category,condition,imagename\n"
                    "subject-01,1,1,0.8,knife,oven,0,0001_edg_s01_0_oven_00_oven10.png\n"
                    "subject-01,1,2,0.8,knife,car,0,0002_edg_s01_0_oven_00_oven3.png\n")
    with pytest.raises(ValueError, match=r"line 3.*5th"):
        read_trials(path)


def test_written_csv_reads_back_as_model_vs_human_writes_it(tmp_path):
    trials = [Trial("airplane1.png", "airplane", "airplane", "airplane", "m"),
              Trial("bear3.png", "bear", "bear", None, "m")]
    path = write_trials(trials, "my_net", tmp_path, "silhouette")
    assert path.name == "silhouette_my-net_session-1.csv"
    assert path.read_text().splitlines()[2] == "my_net,session-1,2,NaN,na,bear,NaN,bear3.png"
    assert read_trials(path) == [Trial(t.image, t.shape, t.texture, t.decision, "my_net") for t in trials]
    sketch = [Trial("0007_ske_dnn_0_cat_00_cat-12.png", "cat", "cat", "dog", "m")]
    line = write_trials(sketch, "m", tmp_path, "sketch").read_text().splitlines()[1]
    assert line.split(",")[6] == "0"  # model-vs-human writes the name's condition field for the session sets


# --- folders -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["edge", "sketch"])
def test_synthetic_sets_in_both_layouts(tmp_path, name):
    data = ShapeOnlyDataset(make_shape_only(tmp_path / name, name), name)
    assert len(data) == DATASETS[name].size and data.shape_only and data.name == name
    image, index = data[3]
    assert image.dtype == torch.uint8 and image.shape == (3, 8, 8) and index == 3
    assert data.categories() == [c for c in CATEGORIES for _ in range(DATASETS[name].per_category)]
    label = category_of if name == "sketch" else (lambda n: n.removesuffix(".png").rstrip("0123456789"))  # 5th field / the folder's
    assert [label(n) for n in data.image_names()] == data.categories()


def test_embedded_sets_are_the_shared_ones(shared_dir):
    for name in ("edge", "silhouette"):
        data = ShapeOnlyDataset(embedded_dataset(name), name)
        assert len(data) == 160 and data.size == (224, 224)
        for path, _, _ in data.items:
            original = shared_dir / "data" / name / path.parent.name / path.name
            assert path.read_bytes() == original.read_bytes(), path
        shipped = embedded_humans(name)
        assert [p.name for p in shipped] == [f"{name}_subject-{i:02d}_session_1.csv" for i in range(1, 11)]
        for p in shipped:
            assert p.read_bytes() == (shared_dir / "data" / "modelvshuman-raw" / name / p.name).read_bytes()
    licence = (data_dir() / "LICENSE-CC-BY-4.0.txt").read_text()
    assert "Attribution 4.0 International" in licence
    assert "CC BY 4.0" in (data_dir() / "ATTRIBUTION.md").read_text()


def test_missing_category_names_the_path(tmp_path):
    root = make_shape_only(tmp_path / "edge", "edge")
    for p in (root / "truck").iterdir():
        p.unlink()
    (root / "truck").rmdir()
    next((root / "bear").iterdir()).unlink()
    with pytest.raises(StimulusError) as info:
        ShapeOnlyDataset(root, "edge")
    text = str(info.value)
    assert f"missing category folder {root / 'truck'}" in text
    assert f"{root / 'bear'} holds 9 images of category 'bear', expected 10" in text


def test_missing_category_in_the_session_layout_names_the_path(tmp_path):
    root = make_shape_only(tmp_path / "sketch", "sketch", per_category=50)
    for p in (root / "dnn" / "session-1").glob("*_dog_*"):
        p.unlink()
    (root / "dnn" / "session-1" / "0001_ske_dnn_0_kitten_00_x.png").write_bytes(b"")
    with pytest.raises(StimulusError) as info:
        scan_shape_only(root, "sketch")
    text = str(info.value)
    assert f"{root / 'dnn'} holds 0 images of category 'dog', expected 50" in text
    assert f"misnamed file {root / 'dnn' / 'session-1' / '0001_ske_dnn_0_kitten_00_x.png'}" in text
    with pytest.raises(StimulusError, match=str(tmp_path / "nowhere")):
        scan_shape_only(tmp_path / "nowhere", "sketch")
    with pytest.raises(StimulusError, match=r"missing folder .*edge/dnn"):
        scan_shape_only(make_shape_only(tmp_path / "edge", "edge"), "stylized")  # the wrong layout, named


def test_corrupt_image_names_its_path(tmp_path):
    root = make_shape_only(tmp_path / "silhouette", "silhouette")
    broken = root / "oven" / "oven4.png"
    broken.write_bytes(b"not a png")
    data = ShapeOnlyDataset(root, "silhouette")
    with pytest.raises(StimulusError, match=str(broken)):
        data[[p for p, _, _ in data.items].index(broken)]


# --- locating and downloading --------------------------------------------------------------


def test_locate_order_for_every_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "cache"))
    for name, spec in DATASETS.items():
        monkeypatch.delenv(spec.env_var, raising=False)
        assert locate.find_dataset(name, tmp_path / "given") == tmp_path / "given"
        monkeypatch.setenv(spec.env_var, str(tmp_path / "env"))
        assert locate.find_dataset(name) == tmp_path / "env"
        monkeypatch.delenv(spec.env_var)
        if spec.embedded:  # no cache: the package's copy, never a download
            assert locate.find_dataset(name, download=False) == embedded_dataset(name)
        (tmp_path / "cache" / name).mkdir(parents=True)
        assert locate.find_dataset(name) == tmp_path / "cache" / name
    assert dataset_spec("sketch").env_var == "TOPK_PLUGIN_SKETCH" and locate.ENV_VAR == "TOPK_PLUGIN_CUE_CONFLICT"


@pytest.mark.parametrize("name", ["sketch", "stylized"])
def test_offline_error_says_what_to_do(tmp_path, monkeypatch, name):
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "cache"))
    monkeypatch.delenv(dataset_spec(name).env_var, raising=False)
    with pytest.raises(StimulusError) as info:
        locate.find_dataset(name, url=f"file://{tmp_path}/missing.tar.gz")
    text = str(info.value)
    for needle in (str(tmp_path / "cache" / name), "--data", dataset_spec(name).env_var, f"{name}/dnn/session-1",
                   f"releases/download/v0.1/{name}.tar.gz", f"datasets/{name}"):
        assert needle in text
    assert not (tmp_path / "cache" / name).exists()
    assert locate.found_without_download(name) is None


def _archive(tmp_path, name, **kwargs):
    make_shape_only(tmp_path / "src" / name, name, size=2, **kwargs)
    archive = tmp_path / f"{name}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / name, arcname=name)
    return archive


def test_download_unpacks_checks_and_records_the_checksum(tmp_path, monkeypatch):
    """The real download code, fed a local archive in the release's layout."""
    archive = _archive(tmp_path, "sketch")
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "cache"))
    monkeypatch.delenv("TOPK_PLUGIN_SKETCH", raising=False)
    found = locate.find_dataset("sketch", url=archive.as_uri())
    assert found == tmp_path / "cache" / "sketch" and len(ShapeOnlyDataset(found, "sketch")) == 800
    source = json.loads((tmp_path / "cache" / "sketch.source.json").read_text())
    assert source["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest() and not source["sha256_pinned"]
    assert locate.find_dataset("sketch", url="file:///never/used") == found  # cached now
    assert locate.found_without_download("sketch") == found


def test_a_download_with_the_wrong_checksum_or_content_is_not_cached(tmp_path, monkeypatch):
    archive = _archive(tmp_path, "stylized")
    with pytest.raises(StimulusError, match="sha256"):
        locate.download_dataset("stylized", tmp_path / "cache", url=archive.as_uri(), sha256="0" * 64)
    assert not (tmp_path / "cache" / "stylized").exists()
    good = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert locate.download_dataset("stylized", tmp_path / "cache", url=archive.as_uri(), sha256=good).is_dir()
    short = _archive(tmp_path / "short", "stylized", per_category=49)
    with pytest.raises(StimulusError, match="expected 50"):
        locate.download_dataset("stylized", tmp_path / "other", url=short.as_uri())
    assert not (tmp_path / "other" / "stylized").exists()
