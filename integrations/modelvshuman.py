"""Our models inside model-vs-human (bethgelab), scored with our own metrics.

Why: model-vs-human is the benchmark the paper's shape-bias numbers come
from. Running our (sparsified) models through its own ``Evaluate`` and
figures shows that they behave there as in our native evaluator
(:func:`topk_plugin.shape_bias.evaluate_model`).

How model-vs-human finds a model (SPEC section 3, "model-vs-human as a host"):
its registry stores only a function's name, and ``load_model`` then looks that
name up as an attribute of ``modelvshuman.models.pytorch.model_zoo`` (via
``eval``, so the name must be a Python identifier). :func:`register` does
both. Names that exist in ``torchvision.models`` win over the registry, and
its own models already own their names, so :func:`register` refuses those.

model-vs-human is not on PyPI and is imported lazily, only inside functions::

    git clone https://github.com/bethgelab/model-vs-human
    pip install --no-deps -e model-vs-human
    pip install 'topk-plugin[modelvshuman]'   # click tqdm requests pandas<3 matplotlib<3.11 seaborn
    export MODELVSHUMANDIR=$PWD/model-vs-human

``import modelvshuman`` also imports tensorflow, tensorflow_hub, clip and
skimage, which PyTorch models never use; install them, or opt in to strict
stand-ins with :func:`use_offline_stand_ins` before the first import.

Typical use::

    from topk_plugin.integrations import modelvshuman as mvh
    mvh.register("squeezenet11_dense", lambda: torchvision.models.squeezenet1_1(),
                 weights_path="squeezenet1_1.pth")
    results = mvh.evaluate(["squeezenet11_dense"], batch_size=32, num_workers=2)
    mvh.plot_shape_bias(["squeezenet11_dense"])
    edge = mvh.evaluate(["squeezenet11_dense"], dataset="edge")  # accuracy, error consistency

The shape-only datasets (``edge``, ``silhouette``, ``sketch``, ``stylized``)
are evaluated the same way; model-vs-human reads them from
``$MODELVSHUMANDIR/datasets/<name>`` (edge and silhouette ship with
topk_plugin: link ``topk_plugin.shape_bias.embedded.embedded_dataset("edge")``
there) and the results are our accuracy and error consistency with its human
subjects.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import keyword
import os
import sys
import time
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from topk_plugin.shape_bias.batches import IMAGENET_MEAN, IMAGENET_STD, model_normalization
from topk_plugin.shape_bias.datasets import dataset_spec
from topk_plugin.shape_bias.embedded import embedded_dataset
from topk_plugin.shape_bias.humans import load_humans
from topk_plugin.shape_bias.metrics import ShapeBiasResult, shape_bias
from topk_plugin.shape_bias.mvh_csv import csv_name, read_trials
from topk_plugin.shape_bias.shape_only_scores import trials_scores
from topk_plugin.zoo.weights import load_weights_file

__all__ = [
    "ModelVsHumanError",
    "INSTALL_HINT",
    "DATASET",
    "register",
    "unregister",
    "registered",
    "evaluate",
    "results_from_csvs",
    "csv_path",
    "PlottingDefinition",
    "plotting_definition",
    "plot_shape_bias",
    "use_offline_stand_ins",
    "STAND_IN_MODULES",
    "check_mvh_dir",
]

DATASET = "cue-conflict"  # the default dataset, and the one the shape-bias figures use
FRAMEWORK = "pytorch"

INSTALL_HINT = (
    "model-vs-human is not on PyPI; install it from git and point MODELVSHUMANDIR at the checkout:\n"
    "    git clone https://github.com/bethgelab/model-vs-human\n"
    "    pip install --no-deps -e model-vs-human\n"
    "    pip install click tqdm requests 'pandas<3' 'matplotlib<3.11' seaborn\n"
    "    export MODELVSHUMANDIR=$PWD/model-vs-human\n"
    "The checkout needs datasets/cue-conflict/ (the stimuli), raw-data/cue-conflict/ "
    "(the human CSVs, for figures) and figures/."
)

# The modules ``import modelvshuman`` pulls in at top level that PyTorch models never use.
STAND_IN_MODULES = ("tensorflow", "tensorflow_hub", "clip", "skimage", "skimage.transform")
_STAND_IN_MARK = "__topk_plugin_stand_in__"

# what model-vs-human's loader normalises with: ImageNet's statistics
_IMAGENET_MEAN, _IMAGENET_STD = IMAGENET_MEAN, IMAGENET_STD


class ModelVsHumanError(RuntimeError):
    """model-vs-human is missing, incomplete, or refused what we asked of it."""


# --------------------------------------------------------------------------------------
# Finding and importing model-vs-human


def check_mvh_dir(mvh_dir: str | os.PathLike | None = None, *, dataset: str | None = None, figures: bool = False) -> Path:
    """The model-vs-human root (``mvh_dir`` or ``$MODELVSHUMANDIR``), checked.

    model-vs-human reads ``modelvshuman/helper/categories.txt`` under it at
    import time and silently tries to download a dataset it cannot find, so
    missing pieces are named here instead of failing later and obscurely.
    """
    raw = mvh_dir if mvh_dir is not None else os.environ.get("MODELVSHUMANDIR")
    if not raw:
        raise ModelVsHumanError("MODELVSHUMANDIR is not set.\n" + INSTALL_HINT)
    root = Path(raw).expanduser()
    needed = [root / "modelvshuman" / "helper" / "categories.txt"]
    if dataset:
        needed.append(root / "datasets" / dataset)
    if figures:
        needed += [root / "raw-data" / DATASET, root / "figures", root / "assets" / "icons"]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        name = dataset or DATASET
        shipped = embedded_dataset(name)
        source = shipped if shipped is not None else f"/path/to/{name}"
        raise ModelVsHumanError(
            f"model-vs-human directory {root} is incomplete; missing: {', '.join(missing)}.\n"
            f"For {name}, link the stimuli there, e.g. `ln -s {source} {root / 'datasets' / name}`.\n" + INSTALL_HINT
        )
    return root


def _import(module: str, mvh_dir: str | os.PathLike | None = None):
    """Import a modelvshuman (sub)module with errors that say what to do."""
    if "modelvshuman" not in sys.modules:
        root = check_mvh_dir(mvh_dir)
        # Its constants read the variable at import time and keep it.
        os.environ["MODELVSHUMANDIR"] = str(root)
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name == "modelvshuman" or (err.name or "").startswith("modelvshuman."):
            raise ModelVsHumanError(f"cannot import {module}: {err}.\n" + INSTALL_HINT) from err
        top = (err.name or "").split(".")[0]
        if top in {m.split(".")[0] for m in STAND_IN_MODULES}:
            raise ModelVsHumanError(
                f"`import modelvshuman` needs {top!r}, which is not installed. PyTorch models never use it: "
                "install tensorflow-cpu, tensorflow_hub, clip-anytorch and scikit-image, or call "
                "topk_plugin.integrations.modelvshuman.use_offline_stand_ins() before the first import."
            ) from err
        raise ModelVsHumanError(f"importing {module} failed: {err} (a model-vs-human dependency is missing)") from err


def _mvh_root() -> Path:
    """The directory the imported model-vs-human is bound to."""
    return Path(_import("modelvshuman.constants").PROJ_DIR)


def _bind(mvh_dir: str | os.PathLike | None) -> Path:
    """Import model-vs-human for ``mvh_dir``; refuse a second, different directory."""
    if mvh_dir is not None and "modelvshuman" in sys.modules:
        bound = _mvh_root()
        if bound.resolve() != Path(mvh_dir).expanduser().resolve():
            raise ModelVsHumanError(
                f"model-vs-human is already imported for {bound}; it fixes its directories at import time, "
                f"so it cannot switch to {mvh_dir} in this process"
            )
    _import("modelvshuman", mvh_dir)
    return _mvh_root()


# --------------------------------------------------------------------------------------
# Strict stand-ins for the TensorFlow/CLIP/skimage imports (explicit opt-in only)


def _refuse(what: str) -> Callable:
    def refuse(*args, **kwargs):
        raise ModelVsHumanError(
            f"{what} is a topk_plugin stand-in (use_offline_stand_ins); install the real package "
            "to evaluate TensorFlow or CLIP models in model-vs-human"
        )

    refuse.__name__ = what.rsplit(".", 1)[-1]
    return refuse


def _stand_in(name: str, package: bool = False, **attrs) -> types.ModuleType:
    module = types.ModuleType(name, f"topk_plugin stand-in for {name!r} (PyTorch-only model-vs-human)")
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=package)
    if package:
        module.__path__ = []  # submodules other than those given do not exist
    setattr(module, _STAND_IN_MARK, True)
    for key, value in attrs.items():
        setattr(module, key, value)
    return module


def use_offline_stand_ins() -> list[str]:
    """Let ``import modelvshuman`` load without TensorFlow, tensorflow_hub, CLIP and skimage.

    PyTorch models never use them; model-vs-human only imports them at top
    level. Each stand-in holds only what is touched at import time
    (``tensorflow.compat.v1.enable_eager_execution``, a no-op here, and
    ``skimage.transform.resize``, which refuses to run): a stand-in that
    answered every attribute would fool libraries that probe for TensorFlow
    (matplotlib calls ``tensorflow.is_tensor``). Real installed packages are
    never shadowed. Returns the names stood in for. Call it before the first
    ``import modelvshuman``; nothing here calls it for you.
    """
    added = []

    def add(name: str, module: types.ModuleType) -> None:
        sys.modules[name] = module
        added.append(name)

    def missing(name: str) -> bool:
        if name in sys.modules:
            return False
        try:
            return importlib.util.find_spec(name) is None
        except (ImportError, ValueError):
            return True

    if missing("tensorflow"):
        v1 = types.SimpleNamespace(enable_eager_execution=lambda *a, **k: None)
        add("tensorflow", _stand_in("tensorflow", compat=types.SimpleNamespace(v1=v1)))
    if missing("tensorflow_hub"):
        add("tensorflow_hub", _stand_in("tensorflow_hub"))
    if missing("clip"):
        add("clip", _stand_in("clip", tokenize=_refuse("clip.tokenize"), load=_refuse("clip.load")))
    if missing("skimage"):
        transform = _stand_in("skimage.transform", resize=_refuse("skimage.transform.resize"))
        add("skimage", _stand_in("skimage", package=True, transform=transform))
        add("skimage.transform", transform)
    return added


# --------------------------------------------------------------------------------------
# Registration


@dataclass(frozen=True)
class Entry:
    """One of our model-vs-human entries; ``build()`` makes the ready module."""

    name: str
    source: object  # nn.Module, zero-arg factory, or a topk_plugin zoo name
    weights_path: str | None
    normalization: object
    function: Callable

    def build(self):
        return _build(self.source, self.weights_path, self.normalization)


_ENTRIES: dict[str, Entry] = {}


def registered() -> list[str]:
    """The entry names this process registered, in registration order."""
    return list(_ENTRIES)


def _check_name(name: str, registry, model_zoo, replace: bool) -> None:
    """Refuse names model-vs-human would resolve to something else.

    (Distinct identifiers never share a CSV file: only '_' becomes '-'.)
    """
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(
            f"model-vs-human entry name {name!r} must be a Python identifier (it is looked up with "
            f"eval('model_zoo.<name>')); e.g. {_suggest(name)!r}"
        )
    import torchvision.models

    if name in vars(torchvision.models):
        raise ValueError(
            f"{name!r} exists in torchvision.models, which model-vs-human checks before its registry "
            f"(it would load torchvision's pretrained {name!r}, not this model); pick another name, e.g. 'topk_{name}'"
        )
    if name in _ENTRIES:
        if not replace:
            raise ValueError(f"{name!r} is already registered by topk_plugin; pass replace=True to replace it")
        return
    if hasattr(model_zoo, name):
        raise ValueError(f"{name!r} is already an attribute of model-vs-human's PyTorch model zoo; pick another name")
    taken = {n for framework in ("pytorch", "tensorflow") for n in registry.list_models(framework)}
    if name in taken:
        raise ValueError(f"{name!r} is already a model-vs-human model name; pick another name")


def _suggest(name) -> str:
    text = "".join(c if c.isalnum() or c == "_" else "_" for c in str(name)) or "model"
    return text if text[0].isalpha() or text[0] == "_" else "m_" + text


def register(
    name: str,
    source,
    *,
    weights_path: str | os.PathLike | None = None,
    normalization="auto",
    replace: bool = False,
    mvh_dir: str | os.PathLike | None = None,
) -> str:
    """Make ``source`` loadable in model-vs-human as ``name``; returns ``name``.

    ``source`` is a ready ``nn.Module``, a zero-argument factory returning
    one (called when model-vs-human loads the entry, so nothing is built
    before it is evaluated), or a model name for ``topk_plugin.zoo.create_model``
    (e.g. a Top-K variant ``"resnet18_topk20"``). ``weights_path`` is a local
    state dict, loaded strictly when the entry is built; with a zoo name it is
    passed to ``create_model`` (offline, no hub).

    model-vs-human feeds 224x224 images normalised with ImageNet mean/std.
    ``normalization="auto"`` re-normalises for a model whose own mean/std
    differ (timm's ``pretrained_cfg``; the rule our native evaluator uses),
    ``None`` passes the input unchanged, ``(mean, std)`` sets them.

    The name must be a Python identifier and must not exist in
    ``torchvision.models`` (which model-vs-human checks first) or among its
    own models.
    """
    if weights_path is not None:
        weights_path = os.fspath(weights_path)
        if not os.path.isfile(weights_path):
            raise FileNotFoundError(f"weights file not found: {weights_path}")
    if not (isinstance(source, str) or callable(source)):
        raise TypeError(f"source must be an nn.Module, a zero-argument factory or a zoo model name, got {type(source).__name__}")
    _check_normalization(normalization)
    if mvh_dir is not None:
        _bind(mvh_dir)
    registry = _import("modelvshuman.models.registry", mvh_dir)
    model_zoo = _import("modelvshuman.models.pytorch.model_zoo", mvh_dir)
    wrapper = _import("modelvshuman.models.wrappers.pytorch", mvh_dir).PytorchModel
    _check_name(name, registry, model_zoo, replace)

    def entry(model_name, *args):
        return wrapper(_ENTRIES[name].build(), model_name, *args)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = f"topk_plugin entry {name!r} (registered by topk_plugin.integrations.modelvshuman)"
    if name not in registry.list_models(FRAMEWORK):
        registry.register_model(FRAMEWORK)(entry)
    setattr(model_zoo, name, entry)
    _ENTRIES[name] = Entry(name, source, weights_path, normalization, entry)
    if name not in registry.list_models(FRAMEWORK) or getattr(model_zoo, name) is not entry:
        raise ModelVsHumanError(f"registering {name!r} did not take effect in model-vs-human's registry")
    return name


def unregister(name: str) -> None:
    """Remove one of our entries from model-vs-human again."""
    entry = _ENTRIES.pop(name, None)
    if entry is None:
        raise KeyError(f"{name!r} was not registered by topk_plugin")
    registry = sys.modules.get("modelvshuman.models.registry")
    model_zoo = sys.modules.get("modelvshuman.models.pytorch.model_zoo")
    if model_zoo is not None and getattr(model_zoo, name, None) is entry.function:
        delattr(model_zoo, name)
    names = getattr(registry, "_model_registry", {}).get(FRAMEWORK) if registry is not None else None
    if names is not None and name in names:
        names.remove(name)


def _check_normalization(normalization) -> None:
    if normalization is None or normalization == "auto":
        return
    try:
        mean, std = normalization
        ok = len(mean) == 3 and len(std) == 3 and all(s > 0 for s in std)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"normalization must be 'auto', None or (mean, std) with 3 values each, got {normalization!r}")


def _build(source, weights_path: str | None, normalization):
    """The module model-vs-human will call: weights loaded, input re-normalised if needed."""
    if isinstance(source, str):
        from topk_plugin.zoo import create_model

        model = create_model(source, pretrained=weights_path is None, weights_path=weights_path)
    else:
        model = source if isinstance(source, nn.Module) else source()
        if not isinstance(model, nn.Module):
            raise TypeError(f"the factory returned {type(model).__name__}, not an nn.Module")
        if weights_path is not None:
            model.load_state_dict(load_weights_file(weights_path))
    if normalization == "auto":

        normalization = model_normalization(model)
    if normalization is not None:
        mean, std = (tuple(float(v) for v in x) for x in normalization)
        if (mean, std) != (_IMAGENET_MEAN, _IMAGENET_STD):
            model = _Renormalize(model, mean, std)
    return model.eval()


class _Renormalize(nn.Module):
    """Undo model-vs-human's ImageNet normalisation, then apply the model's own."""

    def __init__(self, model: nn.Module, mean, std):
        super().__init__()
        self.model = model
        as_4d = lambda v: torch.tensor(v, dtype=torch.float32).view(1, 3, 1, 1)  # noqa: E731
        self.register_buffer("scale", as_4d(_IMAGENET_STD) / as_4d(std), persistent=False)
        self.register_buffer("shift", (as_4d(_IMAGENET_MEAN) - as_4d(mean)) / as_4d(std), persistent=False)

    def forward(self, x):
        return self.model(x * self.scale + self.shift)


# --------------------------------------------------------------------------------------
# Evaluation and our metrics from its CSVs


def csv_path(name: str, raw_data_dir: str | os.PathLike | None = None, dataset: str = DATASET) -> Path:
    """Where model-vs-human writes ``name``'s CSV of ``dataset``."""
    base = Path(raw_data_dir) if raw_data_dir is not None else _mvh_root() / "raw-data"
    return base / dataset / csv_name(name, dataset)


def results_from_csvs(names: Iterable[str], raw_data_dir: str | os.PathLike | None = None,
                      dataset: str = DATASET) -> dict[str, ShapeBiasResult | dict]:
    """Our metrics (SPEC section 3) from model-vs-human's CSVs of ``dataset``, one per name.

    On cue-conflict a ``ShapeBiasResult``; on a shape-only dataset a dict with
    16-class ``accuracy`` and, against the human subjects (model-vs-human's
    ``raw-data/<dataset>``, else the copies shipped for edge and silhouette),
    ``error_consistency``, each with its ``_ci``. ``raw_data_dir`` defaults to
    the imported model-vs-human's ``raw-data``.
    """
    spec = dataset_spec(dataset)
    humans = None
    if spec.shape_only:
        base = Path(raw_data_dir) if raw_data_dir is not None else _mvh_root() / "raw-data"
        humans = (load_humans(dataset, [base / dataset]) if (base / dataset).is_dir() else None) or load_humans(dataset)
    results = {}
    for name in names:
        path = csv_path(name, raw_data_dir, dataset)
        if not path.is_file():
            raise FileNotFoundError(f"no model-vs-human CSV for {name!r} at {path} (evaluate it first)")
        trials = read_trials(path, dataset)
        results[name] = trials_scores(trials, humans) if spec.shape_only else shape_bias(trials, name)
    return results


@contextlib.contextmanager
def _torch_threads(threads: int | None):
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def evaluate(
    names: str | Sequence[str],
    *,
    batch_size: int = 32,
    num_workers: int = 2,
    mvh_dir: str | os.PathLike | None = None,
    threads: int | None = None,
    dataset: str = DATASET,
) -> dict[str, ShapeBiasResult | dict]:
    """Run ``modelvshuman.Evaluate`` on ``dataset`` and score the CSVs it wrote (:func:`results_from_csvs`).

    ``names`` are model-vs-human model names (ours from :func:`register`, or
    its own). The CSVs land in ``$MODELVSHUMANDIR/raw-data/<dataset>/``,
    where its plots find them. ``threads`` sets torch's thread count during the
    run: on few cores, 1 is much faster because its DataLoader workers compete
    with torch's threads (SPEC section 3).
    """
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise ValueError("no model names to evaluate")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate names: {names}")
    dataset_spec(dataset)
    root = _bind(mvh_dir)
    check_mvh_dir(root, dataset=dataset)
    mvh = _import("modelvshuman")
    started = time.time()
    with _torch_threads(threads):
        mvh.Evaluate()(names, [dataset], batch_size=batch_size, num_workers=num_workers, print_predictions=True)
    paths = {n: csv_path(n, dataset=dataset) for n in names}
    stale = [n for n, p in paths.items() if not p.is_file() or p.stat().st_mtime < started - 1]
    if stale:
        raise ModelVsHumanError(f"model-vs-human did not write a fresh CSV for {stale} under {root / 'raw-data' / dataset}")
    return results_from_csvs(names, dataset=dataset)


# --------------------------------------------------------------------------------------
# Figures


_PALETTE = (  # colour-blind-safe (Okabe-Ito), as RGB in [0, 1]
    (0 / 255, 114 / 255, 178 / 255),
    (230 / 255, 159 / 255, 0 / 255),
    (0 / 255, 158 / 255, 115 / 255),
    (204 / 255, 121 / 255, 167 / 255),
    (86 / 255, 180 / 255, 233 / 255),
    (213 / 255, 94 / 255, 0 / 255),
    (240 / 255, 228 / 255, 66 / 255),
    (0.0, 0.0, 0.0),
)
HUMANS_COLOR = (165 / 255, 30 / 255, 55 / 255)  # model-vs-human's own colour for humans
HUMANS_PATTERN = "subject-*"


@dataclass(frozen=True)
class PlottingDefinition:
    """A model-vs-human plotting definition: ``definition(df) -> [DecisionMaker, ...]``.

    A module-level class, not a closure, because model-vs-human's ``Plot``
    hands it to child processes (which must be able to pickle it under the
    spawn and forkserver start methods). Models come first and humans last:
    its shape-bias boxplot fails (``UnboundLocalError``) with humans first.
    """

    models: tuple  # (name_pattern, color, marker, plotting_name)
    humans: bool = True

    def __call__(self, df):
        from modelvshuman.plotting.decision_makers import DecisionMaker

        makers = [
            DecisionMaker(name_pattern=pattern, color=color, marker=marker, df=df, plotting_name=label)
            for pattern, color, marker, label in self.models
        ]
        if self.humans:
            makers.append(
                DecisionMaker(name_pattern=HUMANS_PATTERN, color=HUMANS_COLOR, marker="D", df=df, plotting_name="humans")
            )
        return makers


def plotting_definition(
    names: str | Sequence[str],
    colors: Sequence | Mapping | None = None,
    *,
    markers: Sequence[str] | Mapping | str = "o",
    labels: Mapping[str, str] | Sequence[str] | None = None,
    humans: bool = True,
) -> PlottingDefinition:
    """A plotting definition for model-vs-human's ``Plot`` showing ``names`` (then humans).

    ``colors``/``markers``/``labels`` are per name (a sequence in the order of
    ``names`` or a mapping by name); colours are anything matplotlib accepts
    (model-vs-human's ``rgb(r, g, b)`` gives [0, 1] tuples). Default colours
    cycle a colour-blind-safe palette; default labels are the names.
    ``humans=False`` leaves the human observers out (its shape-bias boxplot
    needs them; its matrix plot does not).
    """
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise ValueError("no model names to plot")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate names: {names}")
    for name in names:
        if not isinstance(name, str) or not name or name.startswith("subject-") or any(c in name for c in "*?[]"):
            raise ValueError(
                f"{name!r} cannot be a model in a plotting definition: it is matched with fnmatch against the CSVs' "
                "'subj' column, so it must be a plain model name (not a pattern, not 'subject-*')"
            )

    def per_name(value, default, what):
        if value is None:
            return [default(i) for i in range(len(names))]
        if isinstance(value, Mapping):
            unknown = set(value) - set(names)
            if unknown:
                raise ValueError(f"{what} given for names not plotted: {sorted(unknown)}")
            return [value.get(n, default(i)) for i, n in enumerate(names)]
        if isinstance(value, str):
            return [value] * len(names)
        value = list(value)
        if len(value) != len(names):
            raise ValueError(f"{len(value)} {what} for {len(names)} names")
        return value

    color_list = per_name(colors, lambda i: _PALETTE[i % len(_PALETTE)], "colors")
    marker_list = per_name(markers, lambda i: "o", "markers")
    label_list = per_name(labels, lambda i: names[i], "labels")
    for label in label_list:
        if label == "humans":
            raise ValueError("'humans' is model-vs-human's label for the human observers; pick another label")
    return PlottingDefinition(tuple(zip(names, color_list, marker_list, label_list, strict=True)), humans=humans)


def plot_shape_bias(
    names: str | Sequence[str] | PlottingDefinition,
    *,
    figure_directory_name: str = "topk-plugin",
    mvh_dir: str | os.PathLike | None = None,
    **definition_options,
) -> list[Path]:
    """model-vs-human's own shape-bias figures (matrix plot and boxplot) for ``names`` and humans.

    Runs its ``plot_nonparallel`` in this process, so errors surface here
    (its ``Plot`` runs each plot type in a child process, where they hide),
    and does not crop PDFs (``pdfcrop`` is often absent). Returns the PDF paths
    under ``$MODELVSHUMANDIR/figures/<figure_directory_name>/``.
    """
    definition = names if isinstance(names, PlottingDefinition) else plotting_definition(names, **definition_options)
    if not definition.humans:
        raise ValueError("model-vs-human's shape-bias boxplot needs the human observers; keep humans=True")
    root = _bind(mvh_dir)
    check_mvh_dir(root, figures=True)
    plot = _import("modelvshuman.plotting.plot")
    started = time.time()
    plot.plot_nonparallel(
        plot_types=["shape-bias"], plotting_definition=definition,
        figure_directory_name=figure_directory_name, crop_PDFs=False,
    )
    out = root / "figures" / figure_directory_name
    paths = [out / f"{DATASET}_shape-bias_matrixplot.pdf", out / f"{DATASET}_shape-bias_boxplot.pdf"]
    stale = [str(p) for p in paths if not p.is_file() or p.stat().st_mtime < started - 1]
    if stale:
        raise ModelVsHumanError(f"model-vs-human did not write {stale}")
    return paths
