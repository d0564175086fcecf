"""Evaluations under torchrun (gloo, 2 CPU processes) give what one process gives; a failing rank stops all."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from shape_bias.test_dataset import make_set

from topk_plugin import distributed
from topk_plugin.cli import main
from topk_plugin.shape_bias.imagenet import ImageNetImages, imagenet_wnids

# --- shards and merging (one process) ------------------------------------------------


@pytest.mark.parametrize("n, world", [(10, 2), (7, 3), (2, 4), (0, 2)])
def test_shards_are_disjoint_and_cover_everything(n, world):
    data = list(range(n))
    shards = [distributed.shard(data, distributed.DistEnv(r, world, r, torch.device("cpu"))) for r in range(world)]
    items = [shard[i] for shard in shards for i in range(len(shard))]
    assert sorted(items) == data and len(set(items)) == n
    assert max(map(len, shards)) - min(map(len, shards)) <= 1  # balanced
    single = distributed.shard(data, distributed.DistEnv(0, 1, 0, torch.device("cpu")))
    assert single is data


def test_in_index_order_and_single_process_gather():
    parts = [[(0, "a"), (2, "c")], [(1, "b"), (3, "d")], []]
    assert distributed.in_index_order(parts) == ["a", "b", "c", "d"]
    env = distributed.current()
    assert env.world == 1 and env.main
    assert distributed.gather(env, lambda: 5) == [5]
    with pytest.raises(KeyError, match="boom"):
        distributed.gather(env, lambda: {}["boom"])


def test_limit_per_class_keeps_the_first_images_of_each_class(tmp_path):
    wnids = imagenet_wnids()
    for label in (3, 7):
        (tmp_path / wnids[label]).mkdir()
        for i in range(5):
            Image.new("RGB", (8, 8)).save(tmp_path / wnids[label] / f"img{i}.png")
    images = ImageNetImages(tmp_path, limit_per_class=2)
    assert [(p.parent.name, p.name, label) for p, label in images.items] == [
        (wnids[3], "img0.png", 3), (wnids[3], "img1.png", 3), (wnids[7], "img0.png", 7), (wnids[7], "img1.png", 7)]
    assert len(ImageNetImages(tmp_path)) == 10


# --- two processes against one ---------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    cue = make_set(root / "cue-conflict", per_category=80, size=32)
    torch.manual_seed(0)
    weights = root / "squeezenet1_1.pth"
    torch.save(torchvision.models.squeezenet1_1().state_dict(), weights)
    imagenet = root / "imagenet"
    imagenet.mkdir()
    rng = np.random.default_rng(0)
    wnids = imagenet_wnids()
    for i in range(10):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(imagenet / f"{wnids[i * 97]}_{i}.png")
    return cue, weights, imagenet


def _torchrun(args: list[str], nproc: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "topk_plugin", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


def _common(inputs) -> list[str]:
    cue, weights, imagenet = inputs
    return ["--model", "tv:squeezenet1_1", "--weights", str(weights), "--data", str(cue), "--imagenet", str(imagenet),
            "--batch-size", "64", "--workers", "0"]


def _without(row: dict, *keys) -> dict:
    return {k: v for k, v in row.items() if k not in keys}


def test_shape_bias_two_processes_equal_one(inputs, tmp_path, capsys):
    args = ["shape-bias", *_common(inputs), "--topk", "0", "0.5"]
    assert main([*args, "--out", str(tmp_path / "one"), "--json"]) == 0
    capsys.readouterr()
    run = _torchrun([*args, "--out", str(tmp_path / "two"), "--json"])
    assert run.returncode == 0, run.stderr[-3000:]
    two = json.loads(run.stdout)  # rank 0 alone prints: exactly one JSON object
    one = json.loads((tmp_path / "one" / "summary.json").read_text())
    assert [_without(r, "seconds", "csv") for r in two["results"]] == [
        _without(r, "seconds", "csv") for r in one["results"]]  # shape bias, top-1, intervals, per category
    for name in sorted(p.name for p in (tmp_path / "one").glob("*.csv")):  # the same per-image decisions and table
        two_text = (tmp_path / "two" / name).read_text().replace(str(tmp_path / "two"), str(tmp_path / "one"))
        assert two_text == (tmp_path / "one" / name).read_text(), name  # (results.csv names its folder's files)


def test_shape_only_accuracy_two_processes_equal_one(shared_dir, tmp_path, capsys):
    """Dense SqueezeNet 1.1 (real weights) on the shipped edge and silhouette sets: the same accuracy, error
    consistency, intervals and per-image decisions under torchrun as in one process."""
    weights = shared_dir / "weights" / "squeezenet1_1_imagenet_torchvision_norm.pth"
    args = ["shape-bias", "--model", "tv:squeezenet1_1", "--weights", str(weights), "--datasets", "edge", "silhouette",
            "--topk", "0", "--batch-size", "64", "--workers", "0"]
    assert main([*args, "--out", str(tmp_path / "one"), "--json"]) == 0
    one = json.loads(capsys.readouterr().out)
    run = _torchrun([*args, "--out", str(tmp_path / "two"), "--json"])
    assert run.returncode == 0, run.stderr[-3000:]
    two = json.loads(run.stdout)
    assert [r["dataset"] for r in one["results"]] == ["edge", "silhouette"]
    assert all(0.0625 < r["accuracy"] < 1 for r in one["results"])  # a working network, above chance
    assert [_without(r, "seconds", "csv") for r in two["results"]] == [_without(r, "seconds", "csv") for r in one["results"]]
    assert two["humans"] == one["humans"]
    for name in ("edge_squeezenet1-1_session-1.csv", "silhouette_squeezenet1-1_session-1.csv"):
        assert (tmp_path / "two" / name).read_text() == (tmp_path / "one" / name).read_text()


def test_search_two_processes_equal_one_and_resume(inputs, tmp_path, capsys):
    args = ["search-placement", *_common(inputs), "--layers", "features.3", "features.6", "features.9",
            "--topk", "0.5", "--beam", "2", "--budget", "100", "--fill", "zero", "shift", "--no-control", "--shape-only",
            "--op", "topk", "stats-norm", "--strength", "0.5"]  # both op families, each calibrated
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    run = _torchrun([*args, "--out", str(tmp_path / "two")])
    assert run.returncode == 0, run.stderr[-3000:]

    def scores(folder):
        return _without(json.loads((tmp_path / folder / "search.json").read_text()), "timing")

    one = scores("one")
    assert scores("two") == one and len(one["decomposition"]) == 3 and "held_out" in one["comparison"]
    for spec in ("best_placement.json", "best_stats_norm_placement.json"):
        assert (tmp_path / "two" / spec).read_text() == (tmp_path / "one" / spec).read_text()
    # interrupted after the first phase: two processes resume from rank 0's checkpoint
    (tmp_path / "resume").mkdir()
    checkpoint = json.loads((tmp_path / "one" / "search.checkpoint.json").read_text())
    assert list(checkpoint["phases"]) == ["singles", "combinations", "report"]
    checkpoint["phases"] = {"singles": checkpoint["phases"]["singles"]}
    checkpoint["timing"] = {"singles": -1.0}  # marks the phase as read back, not run again
    (tmp_path / "resume" / "search.checkpoint.json").write_text(json.dumps(checkpoint))
    run = _torchrun([*args, "--out", str(tmp_path / "resume"), "--resume"])
    assert run.returncode == 0, run.stderr[-3000:]
    assert scores("resume") == one
    resumed = json.loads((tmp_path / "resume" / "search.json").read_text())
    assert resumed["timing"]["singles"] == -1.0
    assert list(json.loads((tmp_path / "resume" / "search.checkpoint.json").read_text())["phases"]) == [
        "singles", "combinations", "report"]


def test_a_failing_rank_stops_every_rank_with_its_error(inputs, tmp_path):
    cue, weights, imagenet = inputs
    broken = tmp_path / "cue-conflict"
    shutil.copytree(cue, broken)
    victim = sorted(broken.glob("*/*.png"))[1]  # index 1: rank 1's shard
    victim.write_bytes(b"not a png")
    run = _torchrun(["shape-bias", "--model", "tv:squeezenet1_1", "--weights", str(weights), "--data", str(broken),
                     "--topk", "0", "--batch-size", "64", "--workers", "0", "--out", str(tmp_path / "out")])
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if "topk-plugin shape-bias: error" in line]
    # rank 1 names the file; rank 0 relays it ("rank 1: ..."), unless torchrun, seeing rank 1
    # exit first, has already stopped it (a race a loaded machine can lose; the relay itself
    # is tested without torchrun below)
    assert errors and all(victim.name in line for line in errors), run.stderr[-3000:]
    assert not (tmp_path / "out" / "summary.json").exists()


def _gather_with_a_failing_rank(rank: int, world: int, init: str, results) -> None:
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    env = distributed.DistEnv(rank, world, rank, torch.device("cpu"))

    def work():
        if rank == 1:
            raise ValueError("cannot decode image /data/bad.png")
        return rank

    try:
        distributed.gather(env, work)
    except Exception as err:  # noqa: BLE001 - what each rank raised is the result
        results[rank] = f"{type(err).__name__}: {err}"
    try:
        results[f"ok{rank}"] = distributed.gather(env, lambda: rank * 10)  # the group still works
    finally:
        torch.distributed.destroy_process_group()


def test_gather_raises_a_rank_error_on_every_rank(tmp_path):
    import torch.multiprocessing as mp

    results = mp.Manager().dict()
    mp.spawn(_gather_with_a_failing_rank, args=(2, f"file://{tmp_path / 'rendezvous'}", results), nprocs=2)
    assert results[1] == "ValueError: cannot decode image /data/bad.png"  # the failing rank: its own error
    assert results[0] == "RankError: rank 1: ValueError: cannot decode image /data/bad.png"
    assert results["ok0"] == results["ok1"] == [0, 10]
