"""The measured backend choice (``kernel.choice``) and the dispatch that follows it.

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
from topk_plugin import kernel
from topk_plugin.functional import spatial_topk

needs_kernel = pytest.mark.skipif(
    not kernel.dispatch.kernel_available() or kernel.build.portable_library() is None,
    reason=f"C kernel unavailable: {kernel.build.status()}",
)


def tiny_cases(row_cls):
    shapes = {"short": (2, 4, 7, 7), "long": (1, 2, 20, 20)}
    length, bits = row_cls.split("-")
    x = torch.randn(shapes[length], generator=torch.Generator().manual_seed(0)).to(kernel.choice.CASES[row_cls][1])
    yield x.relu(), 0.1
    yield x, 0.5


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """A private decision cache and tiny cases; returns the list of measurements made."""
    monkeypatch.setenv("TOPK_PLUGIN_CACHE", str(tmp_path))
    monkeypatch.setattr(kernel.choice, "_state", {})
    monkeypatch.setattr(kernel.choice, "_cases", tiny_cases)
    monkeypatch.setattr(kernel.choice, "REPEATS", 2)
    measured = []
    real = kernel.choice._measure_all

    def counting(builds, classes, budget):
        measured.append(1)
        return real(builds, classes, budget)

    monkeypatch.setattr(kernel.choice, "_measure_all", counting)
    return measured


def test_measure_scores_relative_to_the_fastest_and_pick_breaks_ties_in_order():
    now = [0.0]

    def runner(cost):
        def run(x, k):
            now[0] += cost
        return run

    runners = {"native": runner(2.0), "portable": runner(1.0), "torch": runner(4.0)}
    scores = kernel.choice.measure(runners, [(None, 0.1), (None, 0.5)], repeats=3, clock=lambda: now[0])
    assert scores == pytest.approx({"native": 2.0, "portable": 1.0, "torch": 4.0, "cases": 2})
    assert kernel.choice.pick(scores) == "portable"
    assert kernel.choice.pick({"torch": 1.0, "portable": 1.0, "native": 1.0}) == "native"


def test_row_classes_follow_the_c_source_boundary():
    """'short' must be exactly the rows the C kernel sends through its vector lanes."""
    source = (kernel.build.source_dir() / "topk_select.c").read_text()
    lanes_max = int(re.search(r"#define LANES_MAX (\d+)", source).group(1))
    assert kernel.choice.SHORT_MAX == lanes_max
    assert kernel.choice.row_class(lanes_max, torch.float32) == "short-32"
    assert kernel.choice.row_class(lanes_max + 1, torch.bfloat16) == "long-16"
    assert kernel.choice.row_class(49, torch.float64) == "short-64"
    assert set(kernel.choice.CASES) == {f"{a}-{b}" for a in ("short", "long") for b in (16, 32, 64)}


@needs_kernel
@pytest.mark.parametrize("slow", kernel.choice.CANDIDATES)
def test_a_slow_candidate_is_not_chosen(fresh, monkeypatch, slow):
    real = kernel.choice._runners

    def with_slow_one(builds):
        runners = real(builds)
        fn = runners[slow]

        def sleepy(x, k):
            time.sleep(0.02)  # the tiny cases take well under a millisecond on any path
            return fn(x, k)

        runners[slow] = sleepy
        return runners

    monkeypatch.setattr(kernel.choice, "_runners", with_slow_one)
    decision = kernel.choice.decision()
    assert decision["source"] == "measured"
    assert slow not in decision["choice"].values(), decision["scores"]
    for row_cls, scores in decision["scores"].items():
        assert scores[slow] > 2 * min(scores.values()), (row_cls, scores)


@needs_kernel
def test_the_decision_is_cached_on_disk_and_reused(fresh, tmp_path):
    first = kernel.choice.decision()
    assert first["source"] == "measured" and fresh == [1]
    path = tmp_path / "kernels" / first["path"].rsplit("/", 1)[-1]
    on_disk = json.loads(path.read_text())
    on_disk_choice = {c: e["choice"] for c, e in on_disk["classes"].items()}
    assert on_disk_choice == first["choice"] and on_disk["cpu"] == kernel.cpu.describe()
    assert set(on_disk_choice.values()) <= set(kernel.choice.CANDIDATES)

    kernel.choice._state.clear()  # a new process
    again = kernel.choice.decision()
    assert again["source"] == "cached" and fresh == [1]
    assert again["choice"] == first["choice"]

    path.write_text("{not json")  # a corrupt file is measured again, not trusted
    kernel.choice._state.clear()
    assert kernel.choice.decision()["source"] == "measured" and fresh == [1, 1]
    assert json.loads(path.read_text())["classes"]

    assert kernel.choice.remeasure()["source"] == "measured" and fresh == [1, 1, 1]


@needs_kernel
def test_a_changed_cpu_flag_set_measures_again(fresh, monkeypatch):
    first = kernel.choice.decision()
    signature = kernel.cpu.cpu_signature()
    monkeypatch.setattr(kernel.cpu, "cpu_signature", lambda: signature + " new_flag")
    kernel.choice._state.clear()
    second = kernel.choice.decision()
    assert second["source"] == "measured" and fresh == [1, 1]
    assert second["path"] != first["path"]
    monkeypatch.setattr(kernel.cpu, "cpu_signature", lambda: signature)
    kernel.choice._state.clear()
    assert kernel.choice.decision()["source"] == "cached" and fresh == [1, 1]


@needs_kernel
def test_another_thread_count_measures_again(fresh):
    threads = torch.get_num_threads()
    first = kernel.choice.decision()
    try:
        torch.set_num_threads(threads + 1)
        kernel.choice._state.clear()
        second = kernel.choice.decision()
        assert second["source"] == "measured" and second["path"] != first["path"] and fresh == [1, 1]
        assert second["threads"] == threads + 1
    finally:
        torch.set_num_threads(threads)


@needs_kernel
def test_dispatch_follows_the_choice_per_row_class(monkeypatch):
    choice = dict.fromkeys(kernel.choice.CASES, "native")
    choice.update({"short-32": "torch", "long-32": "portable", "short-16": "portable"})
    monkeypatch.setattr(kernel.choice, "_state", {"decision": {"choice": choice, "scores": {}, "source": "test"}})
    used = []
    real = kernel.native.run

    def spy(lib, *args, **kwargs):
        used.append(lib)
        return real(lib, *args, **kwargs)

    monkeypatch.setattr(kernel.native, "run", spy)
    native, portable = kernel.build.library("native"), kernel.build.portable_library()
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
        with kernel.dispatch.backend("torch"):
            assert torch.equal(out, spatial_topk(x, 0.2))
        assert used == ([] if expected is None else [expected]), (shape, dtype)
    with kernel.dispatch.backend("portable"):  # the switch overrides the choice
        used.clear()
        spatial_topk(torch.randn(2, 3, 7, 7), 0.2)
        assert used == [portable]


def test_forced_backends_fail_clearly_without_a_compiler(monkeypatch):
    missing = kernel.build.Build(None, None, (), 0, "no C compiler found (set CC, or install gcc/clang)")
    monkeypatch.setattr(kernel.build, "build", lambda variant="native", **kwargs: missing)
    x = torch.randn(2, 3, 8, 8)
    for name, variant in (("kernel", "native"), ("portable", "portable")):
        with kernel.dispatch.backend(name), pytest.raises(RuntimeError, match=f"{name} but the {variant} C kernel .*no C compiler"):
            spatial_topk(x, 0.1)
    assert not kernel.dispatch.use_kernel(x)  # auto: the PyTorch path, no error
    assert torch.equal(spatial_topk(x, 0.1), reference_topk(x, 0.1))


@needs_kernel
def test_kernel_status_names_the_cpu_its_isa_and_every_choice(fresh):
    text = topk_plugin.kernel_status()
    assert kernel.cpu.cpu_model() in text and f"vector ISA {kernel.cpu.vector_isa()}" in text
    assert "native build: loaded" in text and "portable build: loaded" in text
    for row_cls, path in kernel.choice.decision()["choice"].items():
        assert re.search(rf"{row_cls}\s+-> {path}\b", text)


def test_timing_cases_cover_their_row_class():
    """The real cases (the fixture above shrinks them): each class is timed on its own kind of
    rows, post-ReLU and signed, at every K of the choice."""
    for row_cls in kernel.choice.CASES:
        cases = list(kernel.choice._cases(row_cls))
        assert {k for _, k in cases} == set(kernel.choice.KS)
        assert any(bool(x.min() >= 0) for x, _ in cases) and any(bool(x.min() < 0) for x, _ in cases)
        for x, _ in cases:
            assert x.device.type == "cpu" and x.numel() >= 1 << 15  # big enough to run threaded
            assert kernel.choice.row_class(x[0, 0].numel(), x.dtype) == row_cls


@needs_kernel
def test_a_pinned_path_wins_over_the_backend_and_stays_in_its_thread(monkeypatch):
    used = []
    real = kernel.native.run
    monkeypatch.setattr(kernel.native, "run", lambda lib, *a, **kw: (used.append(lib), real(lib, *a, **kw))[1])
    portable = kernel.build.portable_library()
    x = torch.randn(2, 3, 30, 30)
    with kernel.dispatch.backend("torch"), kernel.dispatch.kernel_library(portable):
        spatial_topk(x, 0.2)
    assert used == [portable]

    inside, release = threading.Event(), threading.Event()

    def other_thread():  # pins the PyTorch path in its own thread only
        with kernel.dispatch.kernel_library("torch"):
            inside.set()
            release.wait(10)

    worker = threading.Thread(target=other_thread)
    worker.start()
    try:
        assert inside.wait(10)
        used.clear()
        with kernel.dispatch.backend("portable"):
            spatial_topk(x, 0.2)
        assert used == [portable]
    finally:
        release.set()
        worker.join()
    with pytest.raises(TypeError, match="kernel library or 'torch'"):
        with kernel.dispatch.kernel_library("fast"):
            pass


@needs_kernel
def test_an_unwritable_cache_still_gets_a_decision(fresh, monkeypatch, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("TOPK_PLUGIN_CACHE", str(blocker / "cache"))  # no folder can be made there
    decision = kernel.choice.decision()
    assert decision["source"] == "measured" and fresh == [1]
    assert set(decision["choice"]) == set(kernel.choice.CASES)
    assert not (blocker / "cache").exists()


@needs_kernel
def test_a_failed_measurement_falls_back_to_the_native_build_and_is_not_cached(fresh, monkeypatch, tmp_path):
    def broken(builds, classes, budget):
        fresh.append(1)
        raise RuntimeError("boom")

    monkeypatch.setattr(kernel.choice, "_measure_all", broken)
    with pytest.warns(RuntimeWarning, match="boom"):
        decision = kernel.choice.decision()
    assert set(decision["choice"].values()) == {"native"} and "boom" in decision["source"]
    assert not list((tmp_path / "kernels").glob("backend_choice_*.json"))
    x = torch.randn(2, 3, 30, 30)
    assert torch.equal(spatial_topk(x, 0.2), reference_topk(x, 0.2))  # the user's call goes on


@needs_kernel
def test_torch_compile_in_auto_mode_follows_the_choice(monkeypatch):
    """Under torch.compile the op is one opaque node that picks its path when it runs."""
    choice = dict.fromkeys(kernel.choice.CASES, "native")
    choice.update({"short-32": "torch", "long-32": "portable"})
    monkeypatch.setattr(kernel.choice, "_state", {"decision": {"choice": choice, "scores": {}, "source": "test"}})

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
    scores = kernel.choice.measure(runners, cases, repeats=2, clock=lambda: now[0], deadline=20.0)
    assert 1 <= scores["cases"] < 10  # each case costs 9 clock units: it stops after crossing 20
    assert kernel.choice.measure(runners, cases, repeats=2, clock=lambda: now[0], deadline=-1.0)["cases"] == 1


@needs_kernel
def test_first_use_measures_only_its_row_class_within_the_budget_and_says_so(fresh, monkeypatch, capsys):
    slow_seen = []
    real = kernel.choice._runners

    def slow(builds):
        runners = real(builds)
        fn = runners["torch"]

        def sleepy(x, k):
            slow_seen.append(1)
            time.sleep(0.05)
            return fn(x, k)

        return {**runners, "torch": sleepy}

    monkeypatch.setattr(kernel.choice, "_runners", slow)
    monkeypatch.setattr(kernel.choice, "BUDGET_SECONDS", 0.01)
    monkeypatch.setattr(kernel.choice, "_cases", lambda row_cls: list(tiny_cases(row_cls)) * 3)
    spatial_topk(torch.randn(2, 3, 7, 7), 0.2)  # a short float32 row
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "timing the CPU selection paths for short-32 rows" in err and "tune" in err
    d = kernel.choice._state["decision"]
    assert list(d["choice"]) == ["short-32"] and d["partial"] == ["short-32"]
    assert d["classes"]["short-32"]["cases"] == 1 < d["classes"]["short-32"]["of"]
    spatial_topk(torch.randn(2, 3, 7, 7), 0.1)  # decided: no second measurement, no second notice
    assert capsys.readouterr().err == "" and fresh == [1]


@needs_kernel
def test_tune_measures_every_class_without_a_budget_and_replaces_the_cache(fresh, monkeypatch, capsys):
    monkeypatch.setattr(kernel.choice, "BUDGET_SECONDS", 0.0)
    kernel.choice.choice("long-16")
    assert kernel.choice._state["decision"]["partial"] == ["long-16"]  # a zero budget times the first case only
    d = kernel.choice.tune()
    assert set(d["choice"]) == set(kernel.choice.CASES) and d["source"] == "measured" and not d["partial"]
    assert all(e["budget"] is None and e["cases"] == e["of"] for e in d["classes"].values())
    kernel.choice._state.clear()
    assert kernel.choice.decision()["source"] == "cached"
    with pytest.raises(ValueError, match="unknown row classes"):
        kernel.choice.tune(["short-8"])


@needs_kernel
def test_an_unwritable_cache_keeps_the_kernel_and_says_so_once(monkeypatch, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("TOPK_PLUGIN_CACHE", str(blocker / "cache"))
    monkeypatch.setattr(kernel.build, "_builds", {})
    monkeypatch.setattr(kernel.build, "_unwritable", set())
    build = kernel.build.build("portable")
    again = kernel.build.build("native")
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
    assert all(set(line["choice"]) == set(kernel.choice.CASES) for line in lines)
    assert torch.get_num_threads() == threads


@needs_kernel
def test_changing_the_thread_count_in_a_process_uses_that_counts_decision(fresh):
    threads = torch.get_num_threads()
    first = kernel.choice.decision()
    try:
        torch.set_num_threads(threads + 1)
        second = kernel.choice.decision()  # no clearing: the process notices the new count itself
        assert second["threads"] == threads + 1 and second["path"] != first["path"] and fresh == [1, 1]
    finally:
        torch.set_num_threads(threads)
    assert kernel.choice.decision()["source"] == "cached" and fresh == [1, 1]
