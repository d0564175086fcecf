"""The command line against bad input and faults (issue 26): checks before the work, one line per failure,
no half-written results, readable outputs, resume by what matters.

Each case runs the real entry point, in-process (``main([...])``) where that is
enough and as a subprocess where the real process matters (tracebacks printed
by Python itself, Ctrl-C, environment variables read at import). Every failing
case asserts the exit status, that stderr is one line naming the cause (no
traceback) and that ``--out`` holds nothing new.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from shape_bias.test_dataset import make_set

from topk_plugin.cli import main
from topk_plugin.shape_bias.imagenet import imagenet_wnids

MODEL = "tv:squeezenet1_1"
FAST = ["--batch-size", "256", "--workers", "0", "--json"]  # --json: no progress bars on stderr


# --- tiny data, built once -------------------------------------------------------------------


@pytest.fixture(scope="module")
def cue(tmp_path_factory) -> Path:
    return make_set(tmp_path_factory.mktemp("cc") / "cue-conflict", per_category=80, size=32)


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("in1k")
    wnids = imagenet_wnids()
    for i in range(4):
        Image.new("RGB", (64, 48), (60 * i, 40, 200 - 40 * i)).save(root / f"{wnids[i * 100]}_{i}.png")
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    """Good squeezenet1_1 weights and every kind of bad file passed as --weights."""
    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    good = root / "squeezenet1_1.pth"
    torch.save(torchvision.models.squeezenet1_1().state_dict(), good)
    files = {"good": good}
    torch.save(torchvision.models.squeezenet1_0().state_dict(), root / "squeezenet1_0.pth")
    files["other architecture"] = root / "squeezenet1_0.pth"
    files["truncated"] = root / "truncated.pth"
    files["truncated"].write_bytes(good.read_bytes()[:4000])
    files["empty"] = root / "empty.pth"
    files["empty"].write_bytes(b"")
    files["text"] = root / "text.pth"
    files["text"].write_text("these are not weights\n")
    files["arbitrary pickle"] = root / "pickle.pth"
    files["arbitrary pickle"].write_bytes(pickle.dumps({"weights": Path("/x")}))
    return files


def _tree(path: Path):
    """What is in ``path`` (names, sizes and modification times), or None if it does not exist."""
    if not path.exists():
        return None
    if path.is_file():
        return path.stat().st_size, path.stat().st_mtime_ns
    return sorted((str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns) for p in path.rglob("*"))


def _cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line(err: str, *needles: str) -> str:
    """The single stderr line, checked to hold every needle and no traceback."""
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def no_evaluation(monkeypatch):
    """Any evaluation fails the test: the checks must come before the work."""
    from topk_plugin.cli import shape_bias as command
    from topk_plugin.search import search as search_module

    def started(*_a, **_k):
        raise AssertionError("evaluation started before the input was checked")

    monkeypatch.setattr(command, "evaluate_model", started)
    monkeypatch.setattr(search_module, "evaluate_settings", started)


def _failing(capsys, out: Path, *argv, needles=(), status=2) -> str:
    """Run a failing case: exit ``status``, one line with ``needles``, ``out`` as before."""
    before = _tree(out)
    code, stdout, err = _cli(capsys, *argv, "--out", out)
    line = _one_line(err, *needles)
    assert code == status, line
    assert stdout == ""
    assert _tree(out) == before
    return line


# --- check before the work -------------------------------------------------------------------


def test_out_that_is_a_file_or_lies_under_one(cue, weights, tmp_path, capsys, no_evaluation):
    afile = tmp_path / "results.txt"
    afile.write_text("keep me\n")
    args = ["shape-bias", "--model", MODEL, "--weights", weights["good"], "--data", cue, *FAST]
    _failing(capsys, afile, *args, needles=("--out", "is a file"))
    _failing(capsys, afile / "sub", *args, needles=("--out", "is a file"))
    assert afile.read_text() == "keep me\n"


def _unwritable_dirs(tmp_path: Path) -> list[Path]:
    """Folders this process cannot write in: a mode-555 folder (not for root, who ignores modes) and /sys
    (sysfs refuses new entries even to root, so the check is exercised in CI, which runs as root)."""
    found = []
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        (locked / "probe").mkdir()
        (locked / "probe").rmdir()
    except OSError:
        found.append(locked)
    sysfs = Path("/sys")
    if sysfs.is_dir():
        try:
            (sysfs / "topk-plugin-probe").mkdir()
            (sysfs / "topk-plugin-probe").rmdir()
        except OSError:
            found.append(sysfs / "topk-plugin-results")
    return found


def test_out_that_cannot_be_written(cue, weights, tmp_path, capsys, no_evaluation):
    places = _unwritable_dirs(tmp_path)
    try:
        if not places:
            pytest.skip("no folder here that this process cannot write (root without /sys)")
        for out in places:
            for command in (["shape-bias", "--model", MODEL, "--weights", weights["good"], "--data", cue, *FAST],
                            ["train", "--model", "resnet18_cifar", "--data", cue]):
                _failing(capsys, out, *command, needles=("--out", "cannot write"))
    finally:
        (tmp_path / "locked").chmod(0o755)


@pytest.mark.parametrize("device, needle", [("cdua", "is not a device"), ("cuda", "no CUDA GPU"),
                                            ("cuda:7", "CUDA")])
def test_device_typos_and_missing_gpus(cue, weights, tmp_path, capsys, no_evaluation, device, needle):
    if device.startswith("cuda") and torch.cuda.is_available():
        if device == "cuda" or torch.cuda.device_count() > 7:
            pytest.skip("this machine has the GPU")
        needle = "CUDA GPUs"
    for command in (["shape-bias", "--model", MODEL, "--weights", weights["good"], "--data", cue, *FAST],
                    ["search-placement", "--model", MODEL, "--weights", weights["good"], "--data", cue,
                     "--imagenet", cue],
                    ["train", "--model", "resnet18_cifar", "--data", cue]):
        _failing(capsys, tmp_path / "out", *command, "--device", device, needles=(f"--device {device}", needle))


@pytest.mark.parametrize("kind, needle", [
    ("missing", "no such weights file"),
    ("truncated", "truncated or corrupt"),
    ("empty", "empty"),
    ("text", "not a file written by torch.save"),
    ("other architecture", "does not fit"),
    ("arbitrary pickle", "Python objects besides tensors"),
])
def test_weights_that_cannot_load(cue, imagenet, weights, tmp_path, capsys, no_evaluation, kind, needle):
    path = weights.get(kind, tmp_path / "missing.pth")
    for command in (["shape-bias", "--model", MODEL, "--data", cue, *FAST],
                    ["search-placement", "--model", MODEL, "--data", cue, "--imagenet", imagenet, *FAST]):
        line = _failing(capsys, tmp_path / "out", *command, "--weights", path, needles=(str(path), needle))
        assert "torch.save(model.state_dict()" in line or "dense base" in line  # and what to pass instead


def test_layers_that_match_nothing_or_repeat(cue, imagenet, weights, tmp_path, capsys, no_evaluation):
    shape = ["shape-bias", "--model", MODEL, "--weights", weights["good"], "--data", cue, *FAST]
    search = ["search-placement", "--model", MODEL, "--weights", weights["good"], "--data", cue,
              "--imagenet", imagenet, *FAST]
    for command in (shape, search):
        _failing(capsys, tmp_path / "out", *command, "--layers", "features.3", "featurs.6",
                 needles=("--layers", "'featurs.6'", "features.6"))  # with the close match
        _failing(capsys, tmp_path / "out", *command, "--layers", "features.3", "features.6", "features.3",
                 needles=("--layers", "features.3", "more than once"))
    _failing(capsys, tmp_path / "out", *search, "--layers", "features.*", needles=("--layers", "not patterns"))


@pytest.mark.parametrize("budget", ["nan", "inf", "-1"])
def test_budget_that_is_no_number_of_points(cue, imagenet, weights, tmp_path, capsys, no_evaluation, budget):
    _failing(capsys, tmp_path / "out", "search-placement", "--model", MODEL, "--weights", weights["good"],
             "--data", cue, "--imagenet", imagenet, "--budget", budget, *FAST, needles=(f"--budget {budget}",))


@pytest.mark.parametrize("command", [["shape-bias", "--topk", "0"], ["shape-bias", "--topk", "0", "0.1"],
                                     ["search-placement", "--imagenet"]])
def test_variant_names_are_refused_with_their_base(cue, tmp_path, capsys, no_evaluation, command):
    """Issue 25.2: ``--model alexnet_topk10`` was reported as the dense row (with ``--topk 0`` alone, silently), and
    the search stacked Top-K twice; these commands add Top-K themselves, so a variant is refused with its base."""
    command = [*command, cue] if command[-1] == "--imagenet" else command
    _failing(capsys, tmp_path / "out", *command, "--model", "tv:alexnet_topk10", "--data", cue, *FAST,
             needles=("--model tv:alexnet_topk10", "--model tv:alexnet --topk"))


# --- one line for every failure --------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_search(cue, imagenet, weights, tmp_path_factory):
    """A small finished search: its folder (with the checkpoint) and its arguments."""
    out = tmp_path_factory.mktemp("search") / "out"
    args = ["search-placement", "--model", MODEL, "--weights", str(weights["good"]), "--data", str(cue),
            "--imagenet", str(imagenet), "--layers", "features.3", "--topk", "0.5", "--max-layers", "1",
            "--budget", "100", "--no-holdout", "--no-control", "--shape-only", *FAST, "--json"]
    assert main([*args, "--out", str(out)]) == 0
    return out, args


@pytest.mark.parametrize("damage", ["truncated", "binary", "other JSON", "missing keys", "malformed entry"])
def test_damaged_search_checkpoint(finished_search, tmp_path, capsys, damage):
    out, args = finished_search
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    checkpoint = copy / "search.checkpoint.json"
    text = checkpoint.read_text()
    data = json.loads(text)
    if damage == "truncated":
        checkpoint.write_text(text[: len(text) // 2])
    elif damage == "binary":
        checkpoint.write_bytes(bytes(range(256)) * 4)
    elif damage == "other JSON":
        checkpoint.write_text(json.dumps([1, 2, 3]))
    elif damage == "missing keys":
        checkpoint.write_text(json.dumps({k: v for k, v in data.items() if k != "phases"}))
    else:
        data["phases"]["singles"][0][1].pop("decisions")
        checkpoint.write_text(json.dumps(data))
    capsys.readouterr()
    _failing(capsys, copy, *args, "--resume", needles=(str(checkpoint), "delete", "--resume"))


def test_resume_matches_folders_however_spelled(finished_search, tmp_path, capsys, monkeypatch):
    """The same folders as relative paths resume the search made with absolute ones; a changed setting does not."""
    out, args = finished_search
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    capsys.readouterr()
    first = json.loads((copy / "search.json").read_text())
    cue, imagenet = Path(args[args.index("--data") + 1]), Path(args[args.index("--imagenet") + 1])
    monkeypatch.chdir(cue.parent)
    relative = [a.replace(str(cue), cue.name).replace(str(imagenet), os.path.relpath(imagenet)) for a in args]
    assert relative != args
    code, stdout, err = _cli(capsys, *relative, "--out", copy, "--resume")
    assert code == 0, err
    again = json.loads(stdout)
    assert again["evaluated"] == first["evaluated"]
    _failing(capsys, copy, *relative, "--topk", "0.25", "--resume", needles=("other settings (topks)",))


def test_damaged_train_checkpoint(tmp_path, capsys):
    """``train --resume`` from a truncated or incomplete checkpoint.pt: one line naming it."""
    from topk_plugin.integrations._checkpoint import atomic_torch_save
    from topk_plugin.integrations.train import CHECKPOINT_FORMAT

    data = tmp_path / "data"
    for name in ("n02102040", "n03417042"):
        (data / name).mkdir(parents=True)
        Image.new("RGB", (20, 24), (200, 30, 30)).save(data / name / "0.png")
    for damage in ("truncated", "missing keys"):
        out = tmp_path / damage
        checkpoint = out / "checkpoint.pt"
        atomic_torch_save({"format": CHECKPOINT_FORMAT, "config": {}, "epoch": 1}, checkpoint)
        if damage == "truncated":
            checkpoint.write_bytes(checkpoint.read_bytes()[:100])
        _failing(capsys, out, "train", "--model", "resnet18_cifar", "--data", data, "--resume", "--workers", "0",
                 needles=(str(checkpoint), "delete", "--resume"))


@pytest.mark.parametrize("damage", ["cut in a row", "cut in a name", "binary"])
def test_damaged_model_vs_human_csv(tmp_path, capsys, damage):
    from topk_plugin.shape_bias.categories import CATEGORIES
    from topk_plugin.shape_bias.metrics import Trial
    from topk_plugin.shape_bias.mvh_csv import write_trials

    trials = [Trial(f"{s}1-{t}1.png", s, t, s, "m") for s in CATEGORIES for t in CATEGORIES]
    text = write_trials(trials, "m", tmp_path).read_text()
    path = tmp_path / "trials.csv"
    if damage == "cut in a row":
        path.write_text(text[: text.index(",", 2000)])
    elif damage == "cut in a name":
        path.write_text(text[: text.index(".png", 2000)])
    else:
        path.write_bytes(torch.arange(4000, dtype=torch.int32).numpy().tobytes())
    _failing(capsys, tmp_path / "out", "shape-bias", "--csv", path, needles=(str(path),))


def _broken_copy(cue: Path, tmp_path: Path, how: str) -> tuple[Path, Path]:
    broken = tmp_path / "cue-conflict"
    shutil.copytree(cue, broken)
    victim = sorted((broken / "oven").iterdir())[3]
    if how == "truncated":
        victim.write_bytes(victim.read_bytes()[:100])
    else:
        Image.new("RGB", (40, 32)).save(victim)  # another size than the other stimuli
    return broken, victim


@pytest.mark.parametrize("how, needle", [("truncated", "cannot decode image"), ("other size", "40x32")])
def test_bad_stimulus_is_named_alike_with_and_without_workers(cue, weights, tmp_path, capsys, how, needle):
    broken, victim = _broken_copy(cue, tmp_path, how)
    lines = []
    for workers in ("0", "2"):
        lines.append(_failing(capsys, tmp_path / "out", "shape-bias", "--model", MODEL, "--weights", weights["good"],
                              "--data", broken, "--batch-size", "128", "--workers", workers, "--json",
                              needles=(str(victim), needle)))
    assert lines[0] == lines[1]  # no worker traceback embedded


def test_fid_names_a_truncated_image(tmp_path, capsys):
    pytest.importorskip("torch_fidelity")
    from torch import nn

    from topk_plugin.integrations.fidelity import register_module_extractor

    try:
        name = register_module_extractor("test-robustness-tiny", lambda: nn.Sequential(
            nn.Conv2d(3, 4, 8, 8), nn.AdaptiveAvgPool2d(1)), input_size=32, mean=(0.5,) * 3, std=(0.5,) * 3)
    except ValueError:  # registered by an earlier test in this process
        name = "test-robustness-tiny"
    rng = np.random.default_rng(0)
    for folder in ("fake", "real"):
        (tmp_path / folder).mkdir()
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / folder / f"{i}.png")
    victim = tmp_path / "real" / "2.png"
    victim.write_bytes(victim.read_bytes()[:60])
    code, _, err = _cli(capsys, "fid", tmp_path / "fake", "--real", tmp_path / "real", "--feature-extractor", name,
                        "--image-size", "32", "--device", "cpu", "--json")  # decoded in DataLoader workers
    assert code == 2
    _one_line(err, str(victim), "cannot decode image")


# --- in a real process -----------------------------------------------------------------------


def _run(args: list, env: dict | None = None, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    environment = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "topk_plugin", *map(str, args)], capture_output=True, text=True,
                          env=environment, timeout=timeout, check=False, **kwargs)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: connections are refused at once


def test_unreachable_pretrained_weights_fail_fast(cue, tmp_path):
    """A timm model whose weights the hub cannot give: one line suggesting --weights, at once instead of after
    huggingface_hub's ~50 s of retries (an endpoint that refuses connections, an empty cache)."""
    env = {"HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}", "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_OFFLINE": "0"}
    start = time.perf_counter()
    result = _run(["shape-bias", "--model", "resnet18", "--data", cue, "--out", tmp_path / "out", "--json"], env)
    seconds = time.perf_counter() - start
    _one_line(result.stderr, "resnet18", "--weights")
    assert result.returncode == 2 and not (tmp_path / "out").exists()
    assert seconds < 45, f"{seconds:.0f} s: the hub was retried (5 times per file, ~46 s)"


def test_hub_probe_tells_an_answering_server_from_a_closed_port():
    import http.server
    import threading

    from topk_plugin.zoo.hub import hub_reachable

    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)  # answers 501
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert hub_reachable(f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
    assert not hub_reachable(f"http://127.0.0.1:{_closed_port()}", timeout=2)


CTRL_C = textwrap.dedent("""
    # Ctrl-C as a terminal sends it (SIGINT to the whole process group, DataLoader workers included),
    # once both workers are decoding stimuli.
    import os, signal, sys
    from pathlib import Path
    from topk_plugin.shape_bias import dataset
    fired = Path(sys.argv[1])
    real = dataset.CueConflictDataset.__getitem__
    def getitem(self, index):
        if index >= 600:
            try:
                os.close(os.open(fired, os.O_CREAT | os.O_EXCL))
                os.killpg(os.getpgrp(), signal.SIGINT)
            except FileExistsError:
                pass
        return real(self, index)
    dataset.CueConflictDataset.__getitem__ = getitem
    from topk_plugin.cli import main
    sys.exit(main(sys.argv[2:]))
""")


def test_ctrl_c_says_how_to_resume(cue, imagenet, weights, tmp_path):
    out = tmp_path / "out"
    args = ["search-placement", "--model", MODEL, "--weights", weights["good"], "--data", cue, "--imagenet", imagenet,
            "--layers", "features.3", "--topk", "0.5", "--max-layers", "1", "--budget", "100", "--no-holdout",
            "--no-control", "--shape-only", "--batch-size", "128", "--workers", "2", "--json", "--out", out]
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C)
    cut = subprocess.run([sys.executable, script, tmp_path / "fired", *map(str, args)], capture_output=True, text=True,
                         timeout=300, start_new_session=True, check=False)  # its own process group: the signal reaches no one else
    assert (tmp_path / "fired").exists()
    line = _one_line(cut.stderr, "interrupted", "--resume")
    assert cut.returncode == 130, line
    assert not out.exists()  # interrupted in the first phase: nothing to keep, nothing half-written


def test_ctrl_c_without_resume_option(cue, weights, tmp_path, capsys, monkeypatch):
    from topk_plugin.cli import shape_bias as command

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(command, "evaluate_model", interrupted)
    line = _failing(capsys, tmp_path / "out", "shape-bias", "--model", MODEL, "--weights", weights["good"],
                    "--data", cue, *FAST, needles=("interrupted",), status=130)
    assert "--resume" not in line  # shape-bias has none


def test_bogus_backend_gives_one_line_and_keeps_help(cue, weights, tmp_path):
    env = {"TOPK_PLUGIN_BACKEND": "bogus"}
    assert _run(["--help"], env).returncode == 0
    assert _run(["shape-bias", "--help"], env).returncode == 0
    result = _run(["shape-bias", "--model", MODEL, "--weights", weights["good"], "--data", cue, "--topk", "0.5",
                   *FAST, "--json", "--out", tmp_path / "out"], env)
    _one_line(result.stderr, "TOPK_PLUGIN_BACKEND", "bogus")
    assert result.returncode == 2


def test_unwritable_kernel_cache_is_noticed_once(cue, weights, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = _run(["shape-bias", "--model", MODEL, "--weights", weights["good"], "--data", cue, "--topk", "0.5",
                   *FAST, "--json", "--out", tmp_path / "out"], {"TOPK_PLUGIN_CACHE": str(blocker / "cache")})
    assert result.returncode == 0, result.stderr
    _one_line(result.stderr, "TOPK_PLUGIN_CACHE")


# --- no half-written results -----------------------------------------------------------------


def _disk_full(*_a, **_k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("when", ["second setting", "writing the plot"])
def test_shape_bias_that_fails_late_leaves_out_as_it_was(cue, weights, tmp_path, capsys, monkeypatch, when):
    from topk_plugin.cli import shape_bias as command  # the names the command calls

    if when == "second setting":
        real, calls = command.evaluate_model, []

        def second_fails(*args, **kwargs):
            calls.append(1)
            if len(calls) % 2 == 0:  # the second setting of each run
                _disk_full()
            return real(*args, **kwargs)

        monkeypatch.setattr(command, "evaluate_model", second_fails)
    else:
        monkeypatch.setattr(command, "plot_shape_bias", _disk_full)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("an earlier run's notes\n")
    _failing(capsys, out, "shape-bias", "--model", MODEL, "--weights", weights["good"], "--data", cue,
             "--topk", "0", "0.5", *FAST, needles=("No space left on device",))
    fresh = tmp_path / "fresh"
    _failing(capsys, fresh, "shape-bias", "--model", MODEL, "--weights", weights["good"], "--data", cue,
             "--topk", "0", "0.5", *FAST, needles=("No space left on device",))
    assert not fresh.exists()


def test_search_that_fails_writing_results_keeps_only_its_checkpoint(finished_search, tmp_path, capsys, monkeypatch):
    from topk_plugin.search.search import SearchResult

    _, args = finished_search
    monkeypatch.setattr(SearchResult, "plot", _disk_full)
    fresh = tmp_path / "out"
    code, _, err = _cli(capsys, *args, "--out", fresh)
    _one_line(err, "No space left on device")
    assert code == 2
    assert sorted(p.name for p in fresh.iterdir()) == ["search.checkpoint.json"]  # kept for --resume


def test_train_input_error_leaves_no_config(tmp_path, capsys):
    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    for name in ("n02102040", "n03417042"):
        (data / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(data / name / f"{i}.png")
    victim = data / "n03417042" / "1.png"
    victim.write_bytes(victim.read_bytes()[:200])  # found only when decoded, during the first epoch
    _failing(capsys, tmp_path / "out", "train", "--model", "resnet18_cifar", "--data", data, "--epochs", "1",
             "--batch-size", "4", "--img-size", "16", "--workers", "0", "--json",
             needles=(str(victim), "cannot decode"))


# --- outputs readable like any other file ----------------------------------------------------


def test_results_follow_the_umask(cue, weights, tmp_path, capsys):
    umask = 0o027  # neither 0600 (mkstemp's) nor 0644 (the usual umask's): 0640
    old = os.umask(umask)
    try:
        code, _, err = _cli(capsys, "shape-bias", "--model", MODEL, "--weights", weights["good"], "--data", cue,
                            "--topk", "0", *FAST, "--json", "--out", tmp_path / "out")
    finally:
        os.umask(old)
    assert code == 0, err
    files = sorted((tmp_path / "out").iterdir())
    assert {p.suffix for p in files} == {".csv", ".json", ".png", ".pdf"}
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path


def test_a_bug_is_one_line_with_its_traceback_in_a_file(cue, weights, tmp_path, capsys, monkeypatch):
    from topk_plugin.cli import shape_bias as command

    def bug(*_a, **_k):
        raise TypeError("unsupported operand type(s)\nsecond line")

    monkeypatch.setattr(command, "evaluate_model", bug)
    monkeypatch.delenv("TOPK_PLUGIN_TRACEBACK", raising=False)
    line = _failing(capsys, tmp_path / "out", "shape-bias", "--model", MODEL, "--weights", weights["good"],
                    "--data", cue, *FAST, needles=("internal error", "TypeError", "traceback in"), status=1)
    saved = Path(line.split("traceback in ")[1].split(";")[0])
    assert "def bug" in saved.read_text() or "in bug" in saved.read_text()
    saved.unlink()


@pytest.mark.parametrize(("cpus", "expected"), [({0}, 1), ({0, 1, 2, 3}, 2)])
def test_default_workers_fit_the_cpus_available(monkeypatch, cpus, expected):
    # In a 1-CPU container two workers make torch's DataLoader warn on every run.
    from topk_plugin.cli.main import build_parser

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: cpus, raising=False)
    parser = build_parser()
    for command in (["shape-bias"], ["search-placement"], ["train"], ["fastgan", "train"]):
        sub = parser
        for name in command:
            sub = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
        assert sub.get_default("workers") == expected, command
