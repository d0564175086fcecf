"""topk_plugin.integrations.modelvshuman.

Two groups:

* without model-vs-human: stand-in modules in ``sys.modules`` that mimic the
  parts of its API the integration touches (registry storing only
  ``fn.__name__``, ``load_model`` checking ``torchvision.models`` first, then
  ``getattr(model_zoo, name)``; ``PytorchModel``; ``Evaluate`` writing
  ``raw-data/cue-conflict/cue-conflict_<name, _ as ->_session-1.csv``;
  ``DecisionMaker``), as read in bethgelab/model-vs-human at 79ed7cd;
* with the real model-vs-human: skipped unless it is importable and
  ``MODELVSHUMANDIR`` points at a complete checkout.
"""
from __future__ import annotations

import csv
import importlib.util
import os
import pickle
import subprocess
import sys
import time
import types
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from topk_plugin.integrations import modelvshuman as mvh
from topk_plugin.shape_bias.categories import decisions
from topk_plugin.shape_bias.metrics import ShapeBiasResult

STIMULI = [  # (shape folder, file name): three conflict images and one shape == texture
    ("cat", "cat1-dog2.png"),
    ("dog", "dog3-cat1.png"),
    ("knife", "knife2-bottle4.png"),
    ("bird", "bird1-bird5.png"),
]


# ---------------------------------------------------------------------------------------
# Stand-ins for model-vs-human's API


class FakePytorchModel:
    """Like modelvshuman.models.wrappers.pytorch.PytorchModel."""

    def __init__(self, model, model_name, *args):
        self.model, self.model_name, self.args = model, model_name, args

    def forward_batch(self, images):
        self.model.eval()
        return self.model(images).numpy()  # as the real one: callers run it under no_grad

    def softmax(self, logits):
        return torch.softmax(torch.as_tensor(logits), dim=1).numpy()


@dataclass
class FakeDecisionMaker:
    """Like modelvshuman.plotting.decision_makers.DecisionMaker (fields only)."""

    name_pattern: object
    df: object
    color: object = "grey"
    marker: str = "o"
    plotting_name: str = None


def _module(name, package=False, **attrs):
    module = types.ModuleType(name)
    if package:
        module.__path__ = []
    module.__dict__.update(attrs)
    return module


@pytest.fixture
def fake_mvh(monkeypatch, tmp_path):
    """A model-vs-human look-alike rooted at ``tmp_path``; returns its modules."""
    registry_store = defaultdict(list)

    def register_model(framework):
        def inner(fn):
            registry_store[framework].append(fn.__name__)  # only the name, as the real one
            return fn
        return inner

    registry = _module(
        "modelvshuman.models.registry", _model_registry=registry_store,
        register_model=register_model, list_models=lambda framework: list(registry_store[framework]),
    )
    model_zoo = _module("modelvshuman.models.pytorch.model_zoo")

    def bagnet33(model_name, *args):  # a built-in entry
        raise AssertionError("not loaded in these tests")

    register_model("pytorch")(bagnet33)
    model_zoo.bagnet33 = bagnet33
    registry_store["tensorflow"].append("mobilenet_v1")

    def load_model(model_name, *args):
        """As modelvshuman.utils.load_model: torchvision first, then the registry by attribute."""
        import torchvision.models as zoomodels

        if model_name in zoomodels.__dict__:
            raise AssertionError(f"{model_name} would load torchvision's model")
        if model_name in registry.list_models("pytorch"):
            return eval(f"model_zoo.{model_name}", {"model_zoo": model_zoo})(model_name, *args), "pytorch"
        raise NameError(f"Model {model_name} is not supported.")

    calls = []

    class Evaluate:
        """Writes model-vs-human's CSV from the loaded model's decisions on random images."""

        def __call__(self, models, dataset_names, *args, **kwargs):
            calls.append((list(models), list(dataset_names), kwargs))
            assert kwargs["print_predictions"] is True
            for name in models:
                model, _ = load_model(name)
                generator = torch.Generator().manual_seed(0)
                images = torch.randn(len(STIMULI), 3, 224, 224, generator=generator)
                with torch.no_grad():
                    probabilities = model.softmax(model.forward_batch(images))
                answers = decisions(torch.log(torch.as_tensor(probabilities)))
                folder = tmp_path / "raw-data" / "cue-conflict"
                folder.mkdir(parents=True, exist_ok=True)
                with open(folder / f"cue-conflict_{name.replace('_', '-')}_session-1.csv", "w", newline="") as f:
                    writer = csv.writer(f)
                    writer.writerow(["subj", "session", "trial", "rt", "object_response", "category", "condition", "imagename"])
                    for i, ((shape, image), answer) in enumerate(zip(STIMULI, answers, strict=True), start=1):
                        writer.writerow([name, "1", i, "NaN", answer, shape, "NaN", image])

    modules = {
        "modelvshuman": _module("modelvshuman", package=True, Evaluate=Evaluate),
        "modelvshuman.constants": _module("modelvshuman.constants", PROJ_DIR=str(tmp_path)),
        "modelvshuman.utils": _module("modelvshuman.utils", load_model=load_model),
        "modelvshuman.models": _module("modelvshuman.models", package=True),
        "modelvshuman.models.registry": registry,
        "modelvshuman.models.pytorch": _module("modelvshuman.models.pytorch", package=True),
        "modelvshuman.models.pytorch.model_zoo": model_zoo,
        "modelvshuman.models.wrappers": _module("modelvshuman.models.wrappers", package=True),
        "modelvshuman.models.wrappers.pytorch": _module("modelvshuman.models.wrappers.pytorch", PytorchModel=FakePytorchModel),
        "modelvshuman.plotting": _module("modelvshuman.plotting", package=True),
        "modelvshuman.plotting.decision_makers": _module("modelvshuman.plotting.decision_makers", DecisionMaker=FakeDecisionMaker),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(mvh, "_ENTRIES", {})
    (tmp_path / "datasets" / "cue-conflict").mkdir(parents=True)
    (tmp_path / "modelvshuman" / "helper").mkdir(parents=True)
    (tmp_path / "modelvshuman" / "helper" / "categories.txt").write_text("")
    return types.SimpleNamespace(root=tmp_path, registry=registry, model_zoo=model_zoo, load_model=load_model, calls=calls)


class Tiny(nn.Module):
    """A 1000-class classifier small enough to build in every test."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=4)
        self.fc = nn.Linear(4, 1000)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(1)
    path = tmp_path / "tiny.pth"
    torch.save(Tiny().state_dict(), path)
    return path


# ---------------------------------------------------------------------------------------
# Registration


def test_registered_entry_loads_through_model_vs_humans_lookup(fake_mvh, weights):
    name = mvh.register("tiny_dense", Tiny, weights_path=weights)
    assert name == "tiny_dense" and mvh.registered() == ["tiny_dense"]
    assert "tiny_dense" in fake_mvh.registry.list_models("pytorch")
    wrapped, framework = fake_mvh.load_model("tiny_dense")
    assert framework == "pytorch" and isinstance(wrapped, FakePytorchModel) and wrapped.model_name == "tiny_dense"
    expected = torch.load(weights, weights_only=True)
    for key, value in wrapped.model.state_dict().items():
        assert torch.equal(value, expected[key]), key  # the offline weights, not the random init
    with torch.no_grad():
        assert wrapped.forward_batch(torch.zeros(2, 3, 224, 224)).shape == (2, 1000)


def test_factory_is_called_only_when_loaded(fake_mvh):
    built = []
    mvh.register("tiny_lazy", lambda: built.append(1) or Tiny())
    assert built == []
    fake_mvh.load_model("tiny_lazy")
    assert built == [1]


def test_ready_module_and_sparsified_variant(fake_mvh):
    import topk_plugin

    model = topk_plugin.sparsify(Tiny(), ["conv"], 0.25)
    mvh.register("tiny_topk25", model)
    wrapped, _ = fake_mvh.load_model("tiny_topk25")
    assert wrapped.model is model
    assert "conv" in topk_plugin.sparsified_layers(wrapped.model)


def test_zoo_name_goes_to_create_model_with_the_weights(fake_mvh, monkeypatch, weights):
    calls = []

    def create_model(name, pretrained, weights_path):
        calls.append((name, pretrained, weights_path))
        return Tiny()

    monkeypatch.setitem(sys.modules, "topk_plugin.zoo", _module("topk_plugin.zoo", create_model=create_model))
    mvh.register("tiny_from_zoo", "tiny_topk20", weights_path=weights)
    mvh.register("tiny_from_hub", "tiny_topk20")
    assert calls == []
    fake_mvh.load_model("tiny_from_zoo")
    fake_mvh.load_model("tiny_from_hub")
    assert calls == [("tiny_topk20", False, str(weights)), ("tiny_topk20", True, None)]


@pytest.mark.parametrize(
    "name, message",
    [
        ("squeezenet1_1-topk10", "Python identifier"),
        ("1net", "Python identifier"),
        ("lambda", "Python identifier"),
        ("squeezenet1_1", "torchvision.models"),
        ("resnet50", "torchvision.models"),
        ("get_model", "torchvision.models"),
        ("bagnet33", "model zoo"),
        ("mobilenet_v1", "model-vs-human model name"),
    ],
)
def test_names_model_vs_human_would_resolve_elsewhere_are_refused(fake_mvh, name, message):
    with pytest.raises(ValueError, match=message):
        mvh.register(name, Tiny)
    assert mvh.registered() == []
    assert getattr(fake_mvh.model_zoo, name, None) is None or name == "bagnet33"


def test_identifier_error_suggests_a_usable_name(fake_mvh):
    with pytest.raises(ValueError, match="'squeezenet1_1_topk10'"):
        mvh.register("squeezenet1_1-topk10", Tiny)


def test_reregistering_needs_replace(fake_mvh):
    first, second = Tiny(), Tiny()
    mvh.register("tiny_twice", first)
    with pytest.raises(ValueError, match="replace=True"):
        mvh.register("tiny_twice", second)
    mvh.register("tiny_twice", second, replace=True)
    assert fake_mvh.registry.list_models("pytorch").count("tiny_twice") == 1
    assert fake_mvh.load_model("tiny_twice")[0].model is second


def test_unregister(fake_mvh):
    mvh.register("tiny_gone", Tiny)
    mvh.unregister("tiny_gone")
    assert mvh.registered() == [] and not hasattr(fake_mvh.model_zoo, "tiny_gone")
    assert "tiny_gone" not in fake_mvh.registry.list_models("pytorch")
    with pytest.raises(KeyError):
        mvh.unregister("tiny_gone")


def test_bad_sources_fail_early(fake_mvh, tmp_path):
    with pytest.raises(FileNotFoundError, match="weights file"):
        mvh.register("tiny_noweights", Tiny, weights_path=tmp_path / "missing.pth")
    with pytest.raises(TypeError, match="factory"):
        mvh.register("tiny_notamodel", 42)
    with pytest.raises(ValueError, match="normalization"):
        mvh.register("tiny_badnorm", Tiny, normalization=(0.5, 0.5))
    mvh.register("tiny_returns_none", lambda: None)
    with pytest.raises(TypeError, match="not an nn.Module"):
        fake_mvh.load_model("tiny_returns_none")


def test_model_with_its_own_normalization_is_renormalized(fake_mvh):
    model = Tiny().eval()
    model.pretrained_cfg = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}  # as timm's
    mvh.register("tiny_halfnorm", model)
    wrapped, _ = fake_mvh.load_model("tiny_halfnorm")
    pixels = torch.rand(2, 3, 224, 224)
    imagenet = (pixels - torch.tensor(mvh._IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(mvh._IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = model((pixels - 0.5) / 0.5)
        got = torch.as_tensor(wrapped.forward_batch(imagenet))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)

    mvh.register("tiny_raw", Tiny(), normalization=None)
    assert isinstance(fake_mvh.load_model("tiny_raw")[0].model, Tiny)  # ImageNet or None: passed unchanged


# ---------------------------------------------------------------------------------------
# Evaluation


def test_evaluate_returns_our_metrics_from_the_csvs(fake_mvh):
    mvh.register("tiny_a", Tiny)
    mvh.register("tiny_b", Tiny)
    results = mvh.evaluate(["tiny_a", "tiny_b"], batch_size=8, num_workers=0)
    assert fake_mvh.calls == [(["tiny_a", "tiny_b"], ["cue-conflict"], {"batch_size": 8, "num_workers": 0, "print_predictions": True})]
    assert set(results) == {"tiny_a", "tiny_b"}
    for name, result in results.items():
        assert isinstance(result, ShapeBiasResult) and result.name == name
        assert result.n_images == len(STIMULI) and result.n_conflict == len(STIMULI) - 1
        assert mvh.csv_path(name) == fake_mvh.root / "raw-data" / "cue-conflict" / f"cue-conflict_{name.replace('_', '-')}_session-1.csv"
    assert mvh.results_from_csvs(["tiny_a"])["tiny_a"] == results["tiny_a"]


def test_evaluate_refuses_a_stale_or_missing_csv(fake_mvh):
    sys.modules["modelvshuman"].Evaluate = lambda: (lambda *a, **k: None)  # writes nothing
    with pytest.raises(mvh.ModelVsHumanError, match="fresh CSV"):
        mvh.evaluate("tiny_nothing")
    old = mvh.csv_path("tiny_old")
    old.parent.mkdir(parents=True)
    old.write_text("subj,session,trial,rt,object_response,category,condition,imagename\n")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    with pytest.raises(mvh.ModelVsHumanError, match="tiny_old"):
        mvh.evaluate(["tiny_old"])


def test_evaluate_needs_the_dataset(fake_mvh):
    (fake_mvh.root / "datasets" / "cue-conflict").rmdir()
    with pytest.raises(mvh.ModelVsHumanError, match="datasets/cue-conflict"):
        mvh.evaluate(["tiny_a"])


def test_evaluate_refuses_duplicates_and_nothing(fake_mvh):
    with pytest.raises(ValueError, match="duplicate"):
        mvh.evaluate(["tiny_a", "tiny_a"])
    with pytest.raises(ValueError, match="no model names"):
        mvh.evaluate([])


def test_results_from_csvs_without_model_vs_human(tmp_path):
    from topk_plugin.shape_bias.metrics import Trial, labels_from_filename
    from topk_plugin.shape_bias.mvh_csv import write_trials

    trials = [Trial(image, *labels_from_filename(image), shape) for shape, image in STIMULI]
    write_trials(trials, "my_net", tmp_path / "cue-conflict")
    result = mvh.results_from_csvs(["my_net"], raw_data_dir=tmp_path)["my_net"]
    assert result.shape_bias == 1.0 and result.shape_hits == 3
    with pytest.raises(FileNotFoundError, match="evaluate it first"):
        mvh.results_from_csvs(["other"], raw_data_dir=tmp_path)


def test_cannot_switch_directories_after_import(fake_mvh, tmp_path_factory):
    other = tmp_path_factory.mktemp("other-mvh")
    with pytest.raises(mvh.ModelVsHumanError, match="already imported"):
        mvh.register("tiny_elsewhere", Tiny, mvh_dir=other)


# ---------------------------------------------------------------------------------------
# The shape-only datasets through model-vs-human's own evaluation path


class FaithfulEvaluate:
    """model-vs-human's evaluation of a PyTorch model on one of its datasets, as read in bethgelab/model-vs-human
    at 2921634 (``model_evaluator``, ``datasets/{base,dataloaders,info_mappings,decision_mappings}``,
    ``evaluation/evaluate.ResultPrinter``), on the real images:

    * ``ImageFolder`` over ``datasets/<name>`` (``datasets/<name>/dnn`` for the session sets), unshuffled;
      224 px images get ``ToTensor`` and ``Normalize`` with ImageNet's mean/std, no resize or crop;
    * ``softmax(forward_batch(images))``, then the 16 categories ranked by the MEAN probability over each
      category's ImageNet indices (numpy ``argsort``, flipped); the decision is the first;
    * one CSV ``<name>_<model, _ as ->_<session>.csv`` with ``[model, session number, trial, NaN, decision,
      category, condition, image name]``; the category is the folder (``ImageNetInfoMapping``) or the image
      name's 5th ``_`` field (``InfoMappingWithSessions``, whose condition is the 4th).
    """

    def __init__(self, root, load_model):
        self.root, self.load_model = root, load_model

    def __call__(self, models, dataset_names, *args, batch_size, num_workers, print_predictions):
        import torchvision
        from torchvision import transforms

        from topk_plugin.shape_bias.categories import CATEGORIES, category_indices

        assert print_predictions is True
        transform = transforms.Compose([transforms.ToTensor(),
                                        transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
        for dataset in dataset_names:
            sessions = dataset in ("sketch", "stylized")
            folder = torchvision.datasets.ImageFolder(str(self.root / "datasets" / dataset / ("dnn" if sessions else "")),
                                                      transform)
            loader = torch.utils.data.DataLoader(folder, batch_size=batch_size, shuffle=False, num_workers=num_workers)
            for name in models:
                model, _ = self.load_model(name)
                rows, seen = [], 0
                with torch.no_grad():
                    for images, _ in loader:
                        probabilities = model.softmax(model.forward_batch(images))
                        aggregated = np.transpose([np.mean(np.take(probabilities, category_indices()[c], axis=-1), axis=-1)
                                                   for c in sorted(CATEGORIES)])
                        ranked = np.take(sorted(CATEGORIES), np.flip(np.argsort(aggregated, axis=-1), axis=-1), axis=-1)
                        for response, (path, _) in zip(ranked, folder.imgs[seen:seen + len(images)], strict=True):
                            parts = Path(path).parts
                            image = parts[-1]
                            category = image.split("_")[4] if sessions else parts[-2]
                            condition = image.split("_")[3] if sessions else "NaN"
                            rows.append([name, "1", len(rows) + 1, "NaN", response[0], category, condition, image])
                        seen += len(images)
                out = self.root / "raw-data" / dataset / f"{dataset}_{name.replace('_', '-')}_session-1.csv"
                out.parent.mkdir(parents=True, exist_ok=True)
                with open(out, "w", newline="") as f:
                    csv.writer(f).writerows([["subj", "session", "trial", "rt", "object_response", "category",
                                              "condition", "imagename"], *rows])


class Mixing(nn.Module):
    """A small 1000-class net whose 16-class decision varies from image to image: its head mixes pooled
    features, standardised over a few stimuli (:meth:`standardise`), into the 16 categories' ImageNet indices."""

    def __init__(self):
        super().__init__()
        from topk_plugin.shape_bias.categories import category_indices

        torch.manual_seed(3)
        self.features = nn.Sequential(nn.Conv2d(3, 16, 7, stride=4), nn.ReLU(), nn.Conv2d(16, 16, 3, stride=2),
                                      nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(16, 1000)
        self.register_buffer("mean", torch.zeros(16))
        self.register_buffer("std", torch.ones(16))
        with torch.no_grad():
            self.fc.weight.zero_()
            self.fc.bias.zero_()
            mixing = torch.randn(16, 16, generator=torch.Generator().manual_seed(4)) * 5
            for j, indices in enumerate(category_indices().values()):
                self.fc.weight[indices] = mixing[j]

    def standardise(self, data, every: int = 5):
        """Centre and scale the features (as they are now, Top-K included) on every ``every``-th stimulus."""
        pixels = torch.stack([data[i][0] for i in range(0, len(data), every)]).float() / 255
        x = (pixels - torch.tensor(mvh._IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(mvh._IMAGENET_STD).view(1, 3, 1, 1)
        with torch.no_grad():
            features = self.features(x)
            self.mean.copy_(features.mean(0))
            self.std.copy_(features.std(0) + 1e-6)
        return self

    def forward(self, x):
        return self.fc((self.features(x) - self.mean) / self.std)


@pytest.mark.parametrize("dataset", ["edge", "silhouette"])
def test_model_vs_humans_evaluation_gives_our_decisions(fake_mvh, dataset):
    """A registered Top-K entry, evaluated by (a faithful stand-in of) model-vs-human's Evaluate on the shipped
    stimuli, decides every image as our native evaluator does; its CSV scores to the same accuracy."""
    import topk_plugin
    from topk_plugin.shape_bias.embedded import embedded_dataset
    from topk_plugin.shape_bias.evaluate import evaluate_model
    from topk_plugin.shape_bias.mvh_csv import read_trials
    from topk_plugin.shape_bias.shape_only import ShapeOnlyDataset

    (fake_mvh.root / "datasets" / dataset).symlink_to(embedded_dataset(dataset))
    sys.modules["modelvshuman"].Evaluate = lambda: FaithfulEvaluate(fake_mvh.root, fake_mvh.load_model)
    data = ShapeOnlyDataset(embedded_dataset(dataset), dataset)
    model = topk_plugin.sparsify(Mixing(), ["features.1"], 0.2).eval().standardise(data)
    mvh.register("mixing_topk20", model)
    result = mvh.evaluate(["mixing_topk20"], dataset=dataset, batch_size=48, num_workers=0)["mixing_topk20"]
    theirs = {t.image: t.decision for t in read_trials(mvh.csv_path("mixing_topk20", dataset=dataset), dataset)}
    native = evaluate_model(model, data, batch_size=32, workers=0, progress=False)
    assert theirs == {t.image: t.decision for t in native.trials}
    assert len(theirs) == 160 and len(set(theirs.values())) >= 4  # decisions that depend on the image
    assert result["accuracy"] == native.accuracy and result["n_subjects"] == 10
    assert -1 <= result["error_consistency"] <= 1


def test_shape_only_dataset_missing_from_model_vs_human_says_how_to_link_it(fake_mvh):
    with pytest.raises(mvh.ModelVsHumanError, match=r"ln -s .*topk_plugin/shape_bias/data/edge .*datasets/edge"):
        mvh.evaluate(["tiny_a"], dataset="edge")


# ---------------------------------------------------------------------------------------
# Errors when model-vs-human is missing


def test_unset_modelvshumandir_names_the_install_steps(monkeypatch):
    monkeypatch.delitem(sys.modules, "modelvshuman", raising=False)
    monkeypatch.delenv("MODELVSHUMANDIR", raising=False)
    with pytest.raises(mvh.ModelVsHumanError, match="MODELVSHUMANDIR is not set") as info:
        mvh.register("tiny_x", Tiny)
    assert "pip install --no-deps -e model-vs-human" in str(info.value)


def test_incomplete_modelvshumandir_names_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.delitem(sys.modules, "modelvshuman", raising=False)
    monkeypatch.setenv("MODELVSHUMANDIR", str(tmp_path))
    with pytest.raises(mvh.ModelVsHumanError, match="categories.txt"):
        mvh.register("tiny_x", Tiny)
    (tmp_path / "modelvshuman" / "helper").mkdir(parents=True)
    (tmp_path / "modelvshuman" / "helper" / "categories.txt").write_text("")
    with pytest.raises(mvh.ModelVsHumanError, match="figures"):
        mvh.check_mvh_dir(figures=True)


def test_not_installed_names_the_install_steps(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "modelvshuman", None)  # makes `import modelvshuman` fail
    with pytest.raises(mvh.ModelVsHumanError, match="not on PyPI"):
        mvh.register("tiny_x", Tiny)


def test_missing_tensorflow_points_at_the_stand_ins(monkeypatch, tmp_path):
    package = tmp_path / "modelvshuman"  # a checkout whose package imports tensorflow first, as the real one
    (package / "helper").mkdir(parents=True)
    (package / "helper" / "categories.txt").write_text("")
    (package / "__init__.py").write_text("import tensorflow\n")
    monkeypatch.setenv("MODELVSHUMANDIR", str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [n for n in sys.modules if n == "modelvshuman" or n.startswith("modelvshuman.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # as if not installed
    with pytest.raises(mvh.ModelVsHumanError, match="use_offline_stand_ins"):
        mvh.register("tiny_x", Tiny)


# ---------------------------------------------------------------------------------------
# Stand-ins


@pytest.fixture
def clean_stand_in_names():
    """Hide the stand-in names and their submodules (an earlier test in the same process may
    have imported the real ``skimage.io``), and restore them afterwards."""

    def covered(name):
        return any(name == top or name.startswith(top + ".") for top in mvh.STAND_IN_MODULES)

    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if covered(name)}
    yield
    for name in [name for name in sys.modules if covered(name)]:
        sys.modules.pop(name, None)
    sys.modules.update(saved)


def test_stand_ins_are_strict_and_never_shadow_real_packages(clean_stand_in_names, monkeypatch):
    real_clip = types.ModuleType("clip")
    sys.modules["clip"] = real_clip
    monkeypatch.setattr(mvh.importlib.util, "find_spec", lambda name: None)  # as if nothing were installed
    added = mvh.use_offline_stand_ins()
    assert "clip" not in added and sys.modules["clip"] is real_clip
    assert set(added) == {"tensorflow", "tensorflow_hub", "skimage", "skimage.transform"}

    import tensorflow as tf
    from skimage.transform import resize

    tf.compat.v1.enable_eager_execution()  # what model-vs-human calls at import time
    assert not hasattr(tf, "is_tensor")  # matplotlib probes this; a permissive stand-in would answer
    with pytest.raises(AttributeError):
        tf.keras  # noqa: B018
    with pytest.raises(mvh.ModelVsHumanError, match="stand-in"):
        resize(np.zeros((2, 2)), (4, 4))
    with pytest.raises(ModuleNotFoundError):
        import skimage.io  # noqa: F401
    assert mvh.use_offline_stand_ins() == []  # idempotent


def test_stand_ins_are_opt_in(tmp_path):
    """Importing the integration and registering (against the look-alike) installs no stand-in."""
    code = (
        "import sys\n"
        "from topk_plugin.integrations import modelvshuman as m\n"
        "print(sorted(n for n in m.STAND_IN_MODULES if getattr(sys.modules.get(n), m._STAND_IN_MARK, False)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------
# Plotting definition


def test_plotting_definition_lists_models_then_humans(fake_mvh):
    definition = mvh.plotting_definition(
        ["tiny_dense", "tiny_topk10"], colors={"tiny_topk10": (1.0, 0.0, 0.0)},
        labels=["dense", "Top-K 10%"], markers="v",
    )
    df = object()
    makers = definition(df)
    assert [m.name_pattern for m in makers] == ["tiny_dense", "tiny_topk10", "subject-*"]
    assert [m.plotting_name for m in makers] == ["dense", "Top-K 10%", "humans"]
    assert [m.marker for m in makers] == ["v", "v", "D"]
    assert makers[1].color == (1.0, 0.0, 0.0) and makers[0].color == mvh._PALETTE[0]
    assert makers[2].color == mvh.HUMANS_COLOR
    assert all(m.df is df for m in makers)
    assert [m.name_pattern for m in mvh.plotting_definition("tiny_dense", humans=False)(df)] == ["tiny_dense"]


def test_shape_bias_figures_need_the_humans(fake_mvh):
    with pytest.raises(ValueError, match="human observers"):
        mvh.plot_shape_bias(["tiny_dense"], humans=False)


def test_plotting_definition_pickles():
    # model-vs-human's Plot hands it to child processes (spawn/forkserver pickle it)
    definition = mvh.plotting_definition(["a_net", "b_net"])
    assert pickle.loads(pickle.dumps(definition)) == definition


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"names": []}, "no model names"),
        ({"names": ["a", "a"]}, "duplicate"),
        ({"names": ["resnet*"]}, "fnmatch"),
        ({"names": ["subject-01"]}, "fnmatch"),
        ({"names": ["a", "b"], "colors": ["red"]}, "1 colors for 2 names"),
        ({"names": ["a"], "colors": {"zzz": "red"}}, "not plotted"),
        ({"names": ["a"], "labels": ["humans"]}, "humans"),
    ],
)
def test_plotting_definition_errors(kwargs, message):
    names = kwargs.pop("names")
    with pytest.raises(ValueError, match=message):
        mvh.plotting_definition(names, **kwargs)


# ---------------------------------------------------------------------------------------
# Against the real model-vs-human


def _real_mvh_or_skip() -> Path:
    if importlib.util.find_spec("modelvshuman") is None:
        pytest.skip("modelvshuman is not importable (it is not on PyPI: pip install --no-deps -e a git checkout of "
                    "bethgelab/model-vs-human; see topk_plugin.integrations.modelvshuman.INSTALL_HINT)")
    if not os.environ.get("MODELVSHUMANDIR"):
        pytest.skip("MODELVSHUMANDIR is not set (it must point at a model-vs-human checkout)")
    try:
        root = mvh.check_mvh_dir(dataset="cue-conflict")
    except mvh.ModelVsHumanError as err:
        pytest.skip(str(err).splitlines()[0])
    mvh.use_offline_stand_ins()  # explicit opt-in; never shadows installed tensorflow/clip/skimage
    return root


@pytest.fixture
def real_mvh(monkeypatch):
    root = _real_mvh_or_skip()
    import modelvshuman  # noqa: F401

    registered_before = set(mvh.registered())
    yield root
    for name in set(mvh.registered()) - registered_before:
        mvh.unregister(name)


def test_real_registry_and_load_model(real_mvh):
    from modelvshuman.models.wrappers.pytorch import PytorchModel
    from modelvshuman.utils import load_model

    mvh.register("topk_test_tiny", Tiny)
    model, framework = load_model("topk_test_tiny")
    assert framework == "pytorch" and isinstance(model, PytorchModel)
    with torch.no_grad():  # as its evaluator calls it
        assert model.forward_batch(torch.zeros(2, 3, 224, 224)).shape == (2, 1000)
    with pytest.raises(ValueError, match="torchvision.models"):
        mvh.register("alexnet", Tiny)
    with pytest.raises(ValueError, match="model zoo"):
        mvh.register("bagnet33", Tiny)


def test_real_plotting_definition(real_mvh):
    import pandas as pd
    from modelvshuman.plotting.decision_makers import DecisionMaker

    df = pd.DataFrame({"subj": ["tiny_net", "subject-01", "subject-02"]})
    makers = mvh.plotting_definition(["tiny_net"])(df)
    assert all(isinstance(m, DecisionMaker) for m in makers)
    assert [m.decision_makers for m in makers] == [["tiny_net"], ["subject-01", "subject-02"]]


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["edge", "silhouette"])
def test_real_evaluate_on_shape_only_sets_matches_native_evaluator(real_mvh, dataset):
    """model-vs-human's own Evaluate on its edge/silhouette folders decides as our native evaluator, image by image."""
    import topk_plugin
    from topk_plugin.shape_bias.evaluate import evaluate_model
    from topk_plugin.shape_bias.mvh_csv import read_trials
    from topk_plugin.shape_bias.shape_only import ShapeOnlyDataset

    if not (real_mvh / "datasets" / dataset).is_dir():
        pytest.skip(f"{real_mvh / 'datasets' / dataset} is missing (link topk_plugin's shipped copy there)")
    data = ShapeOnlyDataset(real_mvh / "datasets" / dataset, dataset)
    model = topk_plugin.sparsify(Mixing(), ["features.1"], 0.2).eval().standardise(data)
    name = f"topk_test_mixing_{dataset}"
    mvh.register(name, model)
    result = mvh.evaluate([name], dataset=dataset, batch_size=64, num_workers=2, threads=1)[name]
    native = evaluate_model(model, data, progress=False)
    theirs = {t.image: t.decision for t in read_trials(mvh.csv_path(name, dataset=dataset), dataset)}
    assert theirs == {t.image: t.decision for t in native.trials}
    assert result["accuracy"] == native.accuracy
    mvh.csv_path(name, dataset=dataset).unlink()
    (real_mvh / "raw-data" / "performances" / f"{name}.csv").unlink(missing_ok=True)


@pytest.mark.slow
def test_real_evaluate_matches_native_evaluator(real_mvh):
    """model-vs-human's decisions equal our native evaluator's, image by image."""
    from topk_plugin.shape_bias.evaluate import evaluate_model
    from topk_plugin.shape_bias.mvh_csv import read_trials

    torch.manual_seed(0)
    model = Tiny().eval()
    mvh.register("topk_test_tiny_eval", model)
    result = mvh.evaluate(["topk_test_tiny_eval"], batch_size=64, num_workers=2, threads=1)["topk_test_tiny_eval"]
    native = evaluate_model(model, real_mvh / "datasets" / "cue-conflict", name="topk_test_tiny_eval", progress=False)
    theirs = {t.image: t.decision for t in read_trials(mvh.csv_path("topk_test_tiny_eval"))}
    assert theirs == {t.image: t.decision for t in native.trials}
    assert result.n_images == 1280 and result.shape_bias == native.result.shape_bias
    figures = mvh.plot_shape_bias(["topk_test_tiny_eval"], figure_directory_name="topk-plugin-test")
    assert all(p.stat().st_size > 0 for p in figures)
    for path in figures:
        path.unlink()
    mvh.csv_path("topk_test_tiny_eval").unlink()
    (real_mvh / "raw-data" / "performances" / "topk_test_tiny_eval.csv").unlink(missing_ok=True)
