"""The measured backend choice (``_select_tune``) and the dispatch that follows it.

The timing cases are shrunk to a few tiny tensors and the decision cache points at a
temporary folder, so these tests measure for real but in well under a second each.
"""
import json
import re
import threading
import time

import pytest
import torch
from reference import reference_topk

import topk_plugin
from topk_plugin import _cpu, _select_build, _select_ops, _select_tune
from topk_plugin.functional import spatial_topk

needs_kernel = pytest.mark.skipif(
    not _select_ops.kernel_available() or _select_build.portable_library() is None,
    reason=f"C kernel unavailable: {_select_build.status()}",
)


def tiny_cases(row_cls):
    shapes = {"short": (2, 4, 7, 7), "long": (1, 2, 20, 20)}
    length, bits = row_cls.split("-")
    x = torch.randn(shapes[length], generator=torch.Generator().manual_seed(0)).to(_select_tune.CASES[row_cls][1])
    yield x.relu(), 0.1
    yield x, 0.5


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """A private decision cache and tiny cases; returns the list of measurements made."""
    monkeypatch.setenv("TOPK_PLUGIN_CACHE", str(tmp_path))
    monkeypatch.setattr(_select_tune, "_state", {})
    monkeypatch.setattr(_select_tune, "_cases", tiny_cases)
    monkeypatch.setattr(_select_tune, "REPEATS", 2)
    measured = []
    real = _select_tune._measure_all

    def counting(builds, classes, budget):
        measured.append(1)
        return real(builds, classes, budget)

    monkeypatch.setattr(_select_tune, "_measure_all", counting)
    return measured


def test_measure_scores_relative_to_the_fastest_and_pick_breaks_ties_in_order():
    now = [0.0]

    def runner(cost):
        def run(x, k):
            now[0] += cost
        return run

    runners = {"native": runner(2.0), "portable": runner(1.0), "torch": runner(4.0)}
    scores = _select_tune.measure(runners, [(None, 0.1), (None, 0.5)], repeats=3, clock=lambda: now[0])
    assert scores == pytest.approx({"native": 2.0, "portable": 1.0, "torch": 4.0, "cases": 2})
    assert _select_tune.pick(scores) == "portable"
    assert _select_tune.pick({"torch": 1.0, "portable": 1.0, "native": 1.0}) == "native"


def test_row_classes_follow_the_c_source_boundary():
    """'short' must be exactly the rows the C kernel sends through its vector lanes."""
    source = (_select_build.source_dir() / "topk_select.c").read_text()
    lanes_max = int(re.search(r"#define LANES_MAX (\d+)", source).group(1))
    assert _select_tune.SHORT_MAX == lanes_max
    assert _select_tune.row_class(lanes_max, torch.float32) == "short-32"
    assert _select_tune.row_class(lanes_max + 1, torch.bfloat16) == "long-16"
    assert _select_tune.row_class(49, torch.float64) == "short-64"
    assert set(_select_tune.CASES) == {f"{a}-{b}" for a in ("short", "long") for b in (16, 32, 64)}


@needs_kernel
@pytest.mark.parametrize("slow", _select_tune.CANDIDATES)
def test_a_slow_candidate_is_not_chosen(fresh, monkeypatch, slow):
    real = _select_tune._runners

    def with_slow_one(builds):
        runners = real(builds)
        fn = runners[slow]

        def sleepy(x, k):
            time.sleep(0.02)  # the tiny cases take well under a millisecond on any path
            return fn(x, k)

        runners[slow] = sleepy
        return runners

    monkeypatch.setattr(_select_tune, "_runners", with_slow_one)
    decision = _select_tune.decision()
    assert decision["source"] == "measured"
    assert slow not in decision["choice"].values(), decision["scores"]
    for row_cls, scores in decision["scores"].items():
        assert scores[slow] > 2 * min(scores.values()), (row_cls, scores)


@needs_kernel
def test_the_decision_is_cached_on_disk_and_reused(fresh, tmp_path):
    first = _select_tune.decision()
    assert first["source"] == "measured" and fresh == [1]
    path = tmp_path / "kernels" / first["path"].rsplit("/", 1)[-1]
    on_disk = json.loads(path.read_text())
    on_disk_choice = {c: e["choice"] for c, e in on_disk["classes"].items()}
    assert on_disk_choice == first["choice"] and on_disk["cpu"] == _cpu.describe()
    assert set(on_disk_choice.values()) <= set(_select_tune.CANDIDATES)

    _select_tune._state.clear()  # a new process
    again = _select_tune.decision()
    assert again["source"] == "cached" and fresh == [1]
    assert again["choice"] == first["choice"]

    path.write_text("{not json")  # a corrupt file is measured again, not trusted
    _select_tune._state.clear()
    assert _select_tune.decision()["source"] == "measured" and fresh == [1, 1]
    assert json.loads(path.read_text())["classes"]

    assert _select_tune.remeasure()["source"] == "measured" and fresh == [1, 1, 1]


@needs_kernel
def test_a_changed_cpu_flag_set_measures_again(fresh, monkeypatch):
    first = _select_tune.decision()
    signature = _cpu.cpu_signature()
    monkeypatch.setattr(_cpu, "cpu_signature", lambda: signature + " new_flag")
    _select_tune._state.clear()
    second = _select_tune.decision()
    assert second["source"] == "measured" and fresh == [1, 1]
    assert second["path"] != first["path"]
    monkeypatch.setattr(_cpu, "cpu_signature", lambda: signature)
    _select_tune._state.clear()
    assert _select_tune.decision()["source"] == "cached" and fresh == [1, 1]


@needs_kernel
def test_another_thread_count_measures_again(fresh):
    threads = torch.get_num_threads()
    first = _select_tune.decision()
    try:
        torch.set_num_threads(threads + 1)
        _select_tune._state.clear()
        second = _select_tune.decision()
        assert second["source"] == "measured" and second["path"] != first["path"] and fresh == [1, 1]
        assert second["threads"] == threads + 1
    finally:
        torch.set_num_threads(threads)


@needs_kernel
def test_dispatch_follows_the_choice_per_row_class(monkeypatch):
    choice = dict.fromkeys(_select_tune.CASES, "native")
    choice.update({"short-32": "torch", "long-32": "portable", "short-16": "portable"})
    monkeypatch.setattr(_select_tune, "_state", {"decision": {"choice": choice, "scores": {}, "source": "test"}})
    used = []
    real = _select_ops._run_kernel

    def spy(lib, *args, **kwargs):
        used.append(lib)
        return real(lib, *args, **kwargs)

    monkeypatch.setattr(_select_ops, "_run_kernel", spy)
    native, portable = _select_build.library("native"), _select_build.portable_library()
    g = torch.Generator().manual_seed(0)
    for shape, dtype, expected in (
        ((2, 3, 7, 7), torch.float32, None),
        ((2, 3, 30, 30), torch.float32, portable),
        ((2, 3, 7, 7), torch.float16, portable),
        ((2, 3, 30, 30), torch.bfloat16, native),
        ((2, 3, 7, 7), torch.float64, native),
    ):
        x = torch.randn(shape, generator=g).to(dtype)
        used.clear()
        out = spatial_topk(x, 0.2)
        with _select_ops.backend("torch"):
            assert torch.equal(out, spatial_topk(x, 0.2))
        assert used == ([] if expected is None else [expected]), (shape, dtype)
    with _select_ops.backend("portable"):  # the switch overrides the choice
        used.clear()
        spatial_topk(torch.randn(2, 3, 7, 7), 0.2)
        assert used == [portable]


def test_forced_backends_fail_clearly_without_a_compiler(monkeypatch):
    missing = _select_build.Build(None, None, (), 0, "no C compiler found (set CC, or install gcc/clang)")
    monkeypatch.setattr(_select_build, "build", lambda variant="native", **kwargs: missing)
    x = torch.randn(2, 3, 8, 8)
    for name, variant in (("kernel", "native"), ("portable", "portable")):
        with _select_ops.backend(name), pytest.raises(RuntimeError, match=f"{name} but the {variant} C kernel .*no C compiler"):
            spatial_topk(x, 0.1)
    assert not _select_ops.use_kernel(x)  # auto: the PyTorch path, no error
    assert torch.equal(spatial_topk(x, 0.1), reference_topk(x, 0.1))


@needs_kernel
def test_kernel_status_names_the_cpu_its_isa_and_every_choice(fresh):
    text = topk_plugin.kernel_status()
    assert _cpu.cpu_model() in text and f"vector ISA {_cpu.vector_isa()}" in text
    assert "native build: loaded" in text and "portable build: loaded" in text
    for row_cls, path in _select_tune.decision()["choice"].items():
        assert re.search(rf"{row_cls}\s+-> {path}\b", text)


def test_timing_cases_cover_their_row_class():
    """The real cases (the fixture above shrinks them): each class is timed on its own kind of
    rows, post-ReLU and signed, at every K of the choice."""
    for row_cls in _select_tune.CASES:
        cases = list(_select_tune._cases(row_cls))
        assert {k for _, k in cases} == set(_select_tune.KS)
        assert any(bool(x.min() >= 0) for x, _ in cases) and any(bool(x.min() < 0) for x, _ in cases)
        for x, _ in cases:
            assert x.device.type == "cpu" and x.numel() >= 1 << 15  # big enough to run threaded
            assert _select_tune.row_class(x[0, 0].numel(), x.dtype) == row_cls


@needs_kernel
def test_a_pinned_path_wins_over_the_backend_and_stays_in_its_thread(monkeypatch):
    used = []
    real = _select_ops._run_kernel
    monkeypatch.setattr(_select_ops, "_run_kernel", lambda lib, *a, **kw: (used.append(lib), real(lib, *a, **kw))[1])
    portable = _select_build.portable_library()
    x = torch.randn(2, 3, 30, 30)
    with _select_ops.backend("torch"), _select_ops.kernel_library(portable):
        spatial_topk(x, 0.2)
    assert used == [portable]

    inside, release = threading.Event(), threading.Event()

    def other_thread():  # pins the PyTorch path in its own thread only
        with _select_ops.kernel_library("torch"):
            inside.set()
            release.wait(10)

    worker = threading.Thread(target=other_thread)
    worker.start()
    try:
        assert inside.wait(10)
        used.clear()
        with _select_ops.backend("portable"):
            spatial_topk(x, 0.2)
        assert used == [portable]
    finally:
        release.set()
        worker.join()
    with pytest.raises(TypeError, match="kernel library or 'torch'"):
        with _select_ops.kernel_library("fast"):
            pass


@needs_kernel
def test_an_unwritable_cache_still_gets_a_decision(fresh, monkeypatch, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("TOPK_PLUGIN_CACHE", str(blocker / "cache"))  # no folder can be made there
    decision = _select_tune.decision()
    assert decision["source"] == "measured" and fresh == [1]
    assert set(decision["choice"]) == set(_select_tune.CASES)
    assert not (blocker / "cache").exists()


@needs_kernel
def test_a_failed_measurement_falls_back_to_the_native_build_and_is_not_cached(fresh, monkeypatch, tmp_path):
    def broken(builds, classes, budget):
        fresh.append(1)
        raise RuntimeError("boom")

    monkeypatch.setattr(_select_tune, "_measure_all", broken)
    with pytest.warns(RuntimeWarning, match="boom"):
        decision = _select_tune.decision()
    assert set(decision["choice"].values()) == {"native"} and "boom" in decision["source"]
    assert not list((tmp_path / "kernels").glob("backend_choice_*.json"))
    x = torch.randn(2, 3, 30, 30)
    assert torch.equal(spatial_topk(x, 0.2), reference_topk(x, 0.2))  # the user's call goes on


@needs_kernel
def test_torch_compile_in_auto_mode_follows_the_choice(monkeypatch):
    """Under torch.compile the op is one opaque node that picks its path when it runs."""
    choice = dict.fromkeys(_select_tune.CASES, "native")
    choice.update({"short-32": "torch", "long-32": "portable"})
    monkeypatch.setattr(_select_tune, "_state", {"decision": {"choice": choice, "scores": {}, "source": "test"}})

    def f(t):
        return spatial_topk(t, 0.2) * 2 + spatial_topk(t, 0.3, ties="threshold", rank_by="value", invert=True)

    torch._dynamo.reset()
    compiled = torch.compile(f)
    g = torch.Generator().manual_seed(0)
    for shape in ((2, 3, 7, 7), (2, 3, 30, 30)):
        x = torch.randn(shape, generator=g)
        expected = reference_topk(x, 0.2) * 2 + reference_topk(x, 0.3, ties="threshold", rank_by="value", invert=True)
        assert torch.equal(compiled(x), expected) and torch.equal(f(x), expected)


def test_the_measurement_stops_at_its_deadline():
    now = [0.0]

    def run(x, k):
        now[0] += 1.0

    runners = {"native": run, "portable": run, "torch": run}
    cases = [(None, 0.1)] * 10
    scores = _select_tune.measure(runners, cases, repeats=2, clock=lambda: now[0], deadline=20.0)
    assert 1 <= scores["cases"] < 10  # each case costs 9 clock units: it stops after crossing 20
    assert _select_tune.measure(runners, cases, repeats=2, clock=lambda: now[0], deadline=-1.0)["cases"] == 1


@needs_kernel
def test_first_use_measures_only_its_row_class_within_the_budget_and_says_so(fresh, monkeypatch, capsys):
    slow_seen = []
    real = _select_tune._runners

    def slow(builds):
        runners = real(builds)
        fn = runners["torch"]

        def sleepy(x, k):
            slow_seen.append(1)
            time.sleep(0.05)
            return fn(x, k)

        return {**runners, "torch": sleepy}

    monkeypatch.setattr(_select_tune, "_runners", slow)
    monkeypatch.setattr(_select_tune, "BUDGET_SECONDS", 0.01)
    monkeypatch.setattr(_select_tune, "_cases", lambda row_cls: list(tiny_cases(row_cls)) * 3)
    spatial_topk(torch.randn(2, 3, 7, 7), 0.2)  # a short float32 row
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "timing the CPU selection paths for short-32 rows" in err and "tune" in err
    d = _select_tune._state["decision"]
    assert list(d["choice"]) == ["short-32"] and d["partial"] == ["short-32"]
    assert d["classes"]["short-32"]["cases"] == 1 < d["classes"]["short-32"]["of"]
    spatial_topk(torch.randn(2, 3, 7, 7), 0.1)  # decided: no second measurement, no second notice
    assert capsys.readouterr().err == "" and fresh == [1]


@needs_kernel
def test_tune_measures_every_class_without_a_budget_and_replaces_the_cache(fresh, monkeypatch, capsys):
    monkeypatch.setattr(_select_tune, "BUDGET_SECONDS", 0.0)
    _select_tune.choice("long-16")
    assert _select_tune._state["decision"]["partial"] == ["long-16"]  # a zero budget times the first case only
    d = _select_tune.tune()
    assert set(d["choice"]) == set(_select_tune.CASES) and d["source"] == "measured" and not d["partial"]
    assert all(e["budget"] is None and e["cases"] == e["of"] for e in d["classes"].values())
    _select_tune._state.clear()
    assert _select_tune.decision()["source"] == "cached"
    with pytest.raises(ValueError, match="unknown row classes"):
        _select_tune.tune(["short-8"])


@needs_kernel
def test_an_unwritable_cache_keeps_the_kernel_and_says_so_once(monkeypatch, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("TOPK_PLUGIN_CACHE", str(blocker / "cache"))
    monkeypatch.setattr(_select_build, "_builds", {})
    monkeypatch.setattr(_select_build, "_unwritable", set())
    build = _select_build.build("portable")
    again = _select_build.build("native")
    assert build.lib is not None and again.lib is not None and not (blocker / "cache").exists()
    err = capsys.readouterr().err
    assert err.count("is not writable") == 1 and "TOPK_PLUGIN_CACHE" in err


def test_a_bogus_backend_variable_never_breaks_import_or_help_and_fails_clearly_at_use():
    import os
    import subprocess
    import sys

    env = {**os.environ, "TOPK_PLUGIN_BACKEND": "bogus"}
    help_run = subprocess.run([sys.executable, "-m", "topk_plugin", "--help"], capture_output=True, text=True, env=env)
    assert help_run.returncode == 0 and "COMMAND" in help_run.stdout and not help_run.stderr
    code = "import torch, topk_plugin\ntry:\n    topk_plugin.spatial_topk(torch.ones(1, 1, 2, 2), 0.5)\n" \
           "except ValueError as e:\n    print(e)"
    use = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert "TOPK_PLUGIN_BACKEND='bogus' is not one of auto, torch, kernel, portable" in use.stdout, use.stderr


@needs_kernel
def test_tune_command_tunes_each_thread_count(fresh, capsys):
    from topk_plugin.cli import main

    threads = torch.get_num_threads()
    assert main(["tune", "--threads", "1", "2", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["threads"] for line in lines] == [1, 2] and lines[0]["path"] != lines[1]["path"]
    assert all(set(line["choice"]) == set(_select_tune.CASES) for line in lines)
    assert torch.get_num_threads() == threads
