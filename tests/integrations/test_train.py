"""topk-plugin train (issue 8): one epoch, exact resume, torchrun with 2 processes, bad data, shape-bias mapping.

Everything runs on a generated ImageFolder of a few 20x24 px images per class
with the paper's CIFAR-style ResNet-18 at 16 px.
"""
import csv
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from topk_plugin.cli.main import main
from topk_plugin.integrations import train as tr
from topk_plugin.integrations.train_cue import SixteenClassHead, covered_categories, cue_conflict_shape_bias
from topk_plugin.integrations.train_data import CorruptImageError, ShardSampler
from topk_plugin.shape_bias.categories import decisions
from topk_plugin.shape_bias.metrics import labels_from_filename

# dog (English springer), truck (garbage truck), and tench (no cue-conflict category)
CLASSES = ["n02102040", "n03417042", "n01440764"]
FILES = {"config.json", "checkpoint.pt", "metrics.csv", "metrics.json", "model.pt", "results.json"}


def _folder(root, per_class, seed):
    rng = np.random.default_rng(seed)
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
            pixels[..., c] = 255  # a learnable colour cue per class
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagefolder")
    return {"train": _folder(root / "train", 4, 0), "val": _folder(root / "val", 2, 1)}


def _config(folders, out, **kw):
    base = dict(model="resnet18_cifar_topk20", data=str(folders["train"]), val=str(folders["val"]), out=str(out),
                epochs=1, batch_size=4, img_size=16, workers=0)
    return tr.TrainConfig(**{**base, **kw})


def _quiet(*_a, **_k):
    pass


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_one_epoch_trains_evaluates_and_writes_well_formed_files(data, tmp_path):
    out = tmp_path / "run"
    summary = tr.train(_config(data, out, stylized_val=str(data["val"])), progress=False, log=_quiet)
    assert {p.name for p in out.iterdir()} == FILES  # no temporary files left behind

    rows = _rows(out / "metrics.csv")
    assert list(rows[0]) == list(tr.METRIC_COLUMNS) and len(rows) == 1
    as_json = json.loads((out / "metrics.json").read_text())
    assert len(as_json) == 1 and as_json[0]["epoch"] == 1 and as_json[0]["lr"] == pytest.approx(0.1)
    assert float(rows[0]["train_loss"]) == pytest.approx(as_json[0]["train_loss"])
    assert math.isfinite(as_json[0]["train_loss"]) and 0 <= as_json[0]["val_acc"] <= 1

    results = json.loads((out / "results.json").read_text())
    assert results["classes"] == sorted(CLASSES) and results["val"]["n"] == 6
    assert results["val"]["top1"] == pytest.approx(as_json[0]["val_acc"])
    assert results["stylized_val"] == results["val"]  # the same folder passed as --stylized-val
    assert "skipped" in results["shape_bias"]  # no stimuli given; the reason says how
    assert json.loads((out / "config.json").read_text())["classes"] == sorted(CLASSES)

    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["format"] == tr.CHECKPOINT_FORMAT and ckpt["epoch"] == 1
    model, info = tr.load_trained(out / "model.pt")
    assert info["classes"] == sorted(CLASSES) and model.topk_variant["applied"] == ["layer2"]
    trained = model.state_dict()
    assert all(torch.equal(trained[k], v) for k, v in ckpt["model"].items())
    torch.manual_seed(0)
    initial = tr.build_model("resnet18_cifar_topk20", 3, 16).state_dict()
    assert not torch.equal(initial["conv1.weight"], trained["conv1.weight"])  # it trained
    assert summary["epochs_run"] == 1 and summary["results"]["val"] == results["val"]


def test_interrupted_and_resumed_run_ends_with_identical_weights(data, tmp_path):
    kw = dict(model="resnet18_cifar_topk20mean", epochs=2)
    tr.train(_config(data, tmp_path / "straight", **kw), progress=False, log=_quiet)

    def stop_after_first(epoch, _row):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tr.train(_config(data, tmp_path / "resumed", **kw), progress=False, log=_quiet, on_epoch_end=stop_after_first)
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert not (tmp_path / "resumed" / "model.pt").exists()
    # the second half with a decoding worker: augmentation must not depend on --workers
    tr.train(_config(data, tmp_path / "resumed", resume=True, workers=1, **kw), progress=False, log=_quiet)

    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    assert a["scheduler"] == b["scheduler"]
    drop = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "images_per_second")} for r in rows]  # noqa: E731
    assert drop(a["metrics"]) == drop(b["metrics"])


def test_torchrun_two_processes_writes_one_set_of_outputs(data, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "topk_plugin", "train", "--model", "resnet18_cifar_topk20", "--data", str(data["train"]),
           "--val", str(data["val"]), "--epochs", "1", "--batch-size", "4", "--img-size", "16", "--workers", "0",
           "--out", str(out), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1  # only rank 0 reports
    summary = json.loads(lines[0])
    assert summary["world_size"] == 2 and summary["results"]["val"]["n"] == 6  # val split over ranks, summed
    assert {p.name for p in out.iterdir()} == FILES
    assert len(_rows(out / "metrics.csv")) == 1
    assert json.loads((out / "config.json").read_text())["world_size"] == 2
    assert proc.stderr.count("epoch 1/1:") == 1  # one log line, from rank 0


def test_shard_sampler_splits_global_batches_exactly():
    single = list(ShardSampler(19, seed=3, batch_per_rank=4))
    ranks = [list(ShardSampler(19, rank=r, world=2, seed=3, batch_per_rank=2)) for r in range(2)]
    assert sorted(single) == list(range(19)) and [len(r) for r in ranks] == [10, 10]
    for t in range(5):  # global batch t of 2 processes == batch t of 1 process (the last one padded)
        union = sorted(ranks[0][2 * t:2 * t + 2] + ranks[1][2 * t:2 * t + 2])
        assert union == sorted(single[4 * t:4 * t + 4] + ([single[0]] if t == 4 else []))
    assert single != list(ShardSampler(19, seed=4, batch_per_rank=4))  # the seed matters
    assert len(list(ShardSampler(17, seed=3, batch_per_rank=4))) == 16  # no last batch of one image
    sampler = ShardSampler(19, seed=3, batch_per_rank=4)
    sampler.set_epoch(1)
    assert list(sampler) != single  # so does the epoch


def test_unreadable_image_is_named_before_training(data, tmp_path):
    root = tmp_path / "train"
    shutil.copytree(data["train"], root)
    bad = root / CLASSES[0] / "broken.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(CorruptImageError, match="broken.png") as info:
        tr.train(_config(data, tmp_path / "run", data=str(root)), progress=False, log=_quiet)
    assert str(bad) in str(info.value) and "remove or replace" in str(info.value)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_truncated_image_is_named_when_decoded(data, tmp_path):
    root = tmp_path / "train"
    shutil.copytree(data["train"], root)
    victim = root / CLASSES[1] / "0.png"
    victim.write_bytes(victim.read_bytes()[:80])  # header intact, pixel data cut
    with pytest.raises(CorruptImageError, match="cannot decode image .*0.png"):
        tr.train(_config(data, tmp_path / "run", data=str(root)), progress=False, log=_quiet)


def test_bad_runs_fail_clearly_before_training(data, tmp_path, capsys):
    out = tmp_path / "run"
    other = _folder(tmp_path / "other", 1, 2)
    shutil.rmtree(other / CLASSES[0])
    with pytest.raises(ValueError, match="other class folders.*missing: \\['n02102040'\\]"):
        tr.train(_config(data, out, val=str(other)), progress=False, log=_quiet)
    with pytest.raises(FileNotFoundError, match="--resume: no checkpoint"):
        tr.train(_config(data, out, resume=True), progress=False, log=_quiet)
    with pytest.raises(ValueError, match="cover 2 of the 16|cue-conflict"):
        # two covered categories is enough, but the folder must hold the stimuli
        tr.train(_config(data, out, cue_conflict=str(tmp_path / "nowhere")), progress=False, log=_quiet)
    plain = tmp_path / "plain"
    for name in ("cat", "dog"):
        shutil.copytree(data["train"] / CLASSES[0], plain / name)
    with pytest.raises(ValueError, match="cover 0 of the 16 .*wnid"):
        tr.train(_config(data, out, data=str(plain), val=None, cue_conflict=str(tmp_path)), progress=False, log=_quiet)
    assert not out.exists()
    assert main(["train", "--model", "resnet18_cifar", "--data", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_resume_refuses_changed_settings(data, tmp_path):
    out = tmp_path / "run"
    tr.train(_config(data, out), progress=False, log=_quiet)
    with pytest.raises(ValueError, match="already holds a run"):
        tr.train(_config(data, out), progress=False, log=_quiet)
    with pytest.raises(ValueError, match="lr: checkpoint 0.1 vs now 0.05"):
        tr.train(_config(data, out, resume=True, lr=0.05), progress=False, log=_quiet)


def test_sixteen_class_head_decides_by_mean_probability_of_covered_classes():
    classes = ["n02102040", "n02085782", "n03417042", "n01440764"]  # dog, dog, truck, none
    assert covered_categories(classes) == {"dog": [0, 1], "truck": [2]}
    logits = torch.randn(64, 4, generator=torch.Generator().manual_seed(0)) * 3
    head = SixteenClassHead(_Flatten(), classes, img_size=1)  # the "images" are the logits, (n, 4, 1, 1)
    got = decisions(head(logits[:, :, None, None]))
    p = torch.softmax(logits.double(), 1)
    expected = ["dog" if p[i, :2].mean() > p[i, 2] else "truck" for i in range(64)]
    assert got == expected and set(got) == {"dog", "truck"}


class _Flatten(torch.nn.Module):
    def forward(self, x):
        return x.flatten(1)


def test_cue_conflict_scores_only_stimuli_of_covered_categories(shared_dir):
    root = shared_dir / "data" / "cue-conflict"
    if not root.is_dir():
        pytest.skip("no cue-conflict stimuli in the shared folder")
    torch.manual_seed(0)
    model = tr.build_model("resnet18_cifar_topk20", len(CLASSES), 16).eval()
    measured = cue_conflict_shape_bias(model, sorted(CLASSES), 16, root, mean=(0.5,) * 3, std=(0.5,) * 3,
                                       workers=0, progress=False)
    names = [p.name for p in root.rglob("*.png")]
    both = [n for n in names if set(labels_from_filename(n)) <= {"dog", "truck"}]
    result = measured["result"]
    assert result["categories"] == ["dog", "truck"] and result["n_images"] == len(both) > 0
    assert result["n_stimuli_total"] == len(names)
    assert {t.decision for t in measured["trials"]} <= {"dog", "truck"}
    assert result["shape_hits"] + result["texture_hits"] == result["n_conflict"]  # two choices: always one of them


def test_imagenette_example_runs_the_three_models_with_valid_options(tmp_path):
    """examples/train_imagenette.sh with stand-in torchrun/topk-plugin: every command must parse."""
    from pathlib import Path

    from topk_plugin.cli.main import build_parser

    script = Path(__file__).resolve().parents[2] / "examples" / "train_imagenette.sh"
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.txt"
    bin_dir.mkdir()
    for tool in ("torchrun", "topk-plugin"):
        stub = bin_dir / tool
        stub.write_text(f'#!/bin/sh\nprintf "%s\\0" {tool} "$@" >> "{log}"\nprintf "\\n" >> "{log}"\n')
        stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "ADAIN_DIR": "w", "STYLE_DIR": "s"}
    subprocess.run(["bash", str(script), str(tmp_path / "imagenette2"), str(tmp_path / "runs")], check=True, env=env,
                   timeout=30)
    calls = [line.split("\0")[:-1] for line in log.read_text().splitlines() if line]
    assert calls[0][:2] == ["topk-plugin", "stylize"]
    build_parser().parse_args(calls[0][1:])
    trains = [c[c.index("topk_plugin") + 1:] for c in calls[1:]]
    models = [build_parser().parse_args(argv).model for argv in trains]
    assert models == ["resnet18_cifar", "resnet18_cifar_topk20", "resnet18_cifar_topk20mean"]
    assert all(build_parser().parse_args(argv).stylized_val for argv in trains)
