"""The claim experiment: image sample, rows, resume, the summary's statistics and verdict, the CLI end to end."""
import csv
import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from topk_plugin.analysis import claim as claim_mod
from topk_plugin.analysis.claim import ANALYSES, ClaimConfig, ClaimImage, claim_images, example_path, run_claim
from topk_plugin.analysis.claim_report import examples_figure, summarize, verdict_sentences
from topk_plugin.cli.main import main
from topk_plugin.stats import bootstrap, paired_difference

SCORES = claim_mod.SCORES


def test_cue_conflict_sample_is_stratified_and_seeded(shared_dir):
    folder = shared_dir / "data" / "cue-conflict"
    images = claim_images(folder, 32, photos=(), seed=0)
    assert len(images) == 32 and len({im.name for im in images}) == 32
    assert all(im.source == "cue-conflict" and im.image.is_file() for im in images)
    per_shape = Counter(im.image.parent.name for im in images)
    assert len(per_shape) == 16 and set(per_shape.values()) == {2}
    assert [im.name for im in claim_images(folder, 32, photos=(), seed=0)] == [im.name for im in images]
    assert [im.name for im in claim_images(folder, 32, photos=(), seed=1)] != [im.name for im in images]
    with pytest.raises(ValueError, match="holds 1280"):
        claim_images(folder, 5000, photos=())


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="backbones"):
        ClaimConfig(backbones=())
    with pytest.raises(ValueError, match="K=1.5"):
        ClaimConfig(backbones=(("squeezenet1_1", "random"),), ks=(0.1, 1.5))
    with pytest.raises(ValueError, match="unique"):
        ClaimConfig(backbones=(("squeezenet1_1", "random"), ("squeezenet1_1", "w.pth")))
    with pytest.raises(ValueError, match="images_per_batch"):
        ClaimConfig(backbones=(("squeezenet1_1", "random"),), images_per_batch=0)
    with pytest.raises(ValueError, match="max_evals"):
        ClaimConfig(backbones=(("squeezenet1_1", "random"),), max_evals=0)
    with pytest.raises(ValueError, match="optimizer"):
        ClaimConfig(backbones=(("squeezenet1_1", "random"),), optimizer="sgd")


def _rows(values: dict) -> list[dict]:
    """Rows for one backbone, K 0.1: ``values[(analysis, condition)] = {score: per-image array}``."""
    rows = []
    for (analysis, cond), scores in values.items():
        n = len(next(iter(scores.values())))
        free = cond in ("identity", "all")
        for i in range(n):
            rows.append({"backbone": "net", "image": f"im{i}", "source": "photo", "analysis": analysis,
                         "condition": cond, "k": None if free else 0.1, **{s: float(scores[s][i]) for s in SCORES},
                         "evals": 100 + i, "converged": i % 4 != 0})
    return rows


def test_summary_is_the_bootstrap_of_the_per_image_scores_and_reads_the_verdict():
    rng = np.random.default_rng(0)
    n = 40
    base = {s: rng.random(n) for s in SCORES}
    topk = {"ssim": base["ssim"] + 0.2, "edge_correlation": base["edge_correlation"] + 0.3 + 0.01 * rng.random(n),
            "gram_distance": base["gram_distance"] - 0.2, "color_histogram_distance": base["color_histogram_distance"]
            + rng.normal(scale=0.1, size=n)}
    values = {("reconstruct", "identity"): base, ("reconstruct", "topk"): topk, ("reconstruct", "non_topk"): base,
              ("texture-synthesis", "all"): base, ("texture-synthesis", "topk_only"): base,
              ("texture-synthesis", "without_topk"): base}
    entries = summarize(_rows(values))
    assert [(e["analysis"], e["k"], e["images"]) for e in entries] == [("reconstruct", 0.1, n), ("texture-synthesis", 0.1, n)]
    rec = entries[0]
    order = sorted(range(n), key=lambda i: f"im{i}")  # the summary pairs images by name
    for s in SCORES:
        assert rec["conditions"]["topk"][s] == bootstrap(topk[s][order])
        assert rec["difference"][s] == paired_difference(topk[s][order], base[s][order])
        assert rec["difference"][s].value == pytest.approx(np.mean(topk[s] - base[s]))
    # structure: both differences clearly > 0; texture: Gram says Top-K is closer, colour is noise
    assert rec["verdict"] == {"structure": "holds", "texture": "mixed"}
    assert rec["optimisation"]["topk"] == {"not_converged": 10, "of": n, "evals_median": 119.5, "evals_min": 100,
                                           "evals_max": 139}
    assert entries[1]["difference"]["ssim"].ci == [0.0, 0.0]  # same values on both sides
    values[("reconstruct", "topk")] = {**topk, "ssim": base["ssim"] - 0.2, "edge_correlation": base["edge_correlation"] - 0.1}
    assert summarize(_rows(values))[0]["verdict"]["structure"] == "contradicted"
    assert verdict_sentences(entries)[0].startswith("net K=0.1: structure holds (ssim 0.200 [")


def test_summary_pairs_only_images_measured_in_every_condition():
    rng = np.random.default_rng(1)
    base = {s: rng.random(6) for s in SCORES}
    values = {("reconstruct", c): base for c in ("identity", "topk", "non_topk")}
    rows = [r for r in _rows(values) if not (r["condition"] == "topk" and r["image"] == "im5")]
    assert summarize(rows)[0]["images"] == 5


def _image(seed):
    rng = np.random.default_rng(seed)
    arr = (rng.random((40, 40, 3)) * 60).astype(np.uint8)
    arr[8:24, 8:24, 0] = 230  # a bright square: some structure
    return arr


@pytest.fixture
def tiny_run():
    images = [ClaimImage("a", "photo", _image(0)), ClaimImage("b", "photo", _image(1))]
    config = ClaimConfig(backbones=(("squeezenet1_1", "random"),), ks=(0.1, 0.2), size=48, tol=0.1, window=3,
                         max_evals=15, plateaus=2)
    return images, config


def _without_time(rows):
    return [{k: v for k, v in r.items() if k != "batch_seconds"} for r in rows]


REAL_OPTIMISE = claim_mod._optimise


def _count_batches(monkeypatch, fail_after=None) -> list:
    """Count the batches a run optimises (and interrupt it after ``fail_after`` of them)."""
    real = REAL_OPTIMISE
    calls = []

    def counting(extractor, targets, config, device):
        calls.append(len(targets))
        if fail_after is not None and len(calls) > fail_after:
            raise KeyboardInterrupt
        return real(extractor, targets, config, device)

    monkeypatch.setattr(claim_mod, "_optimise", counting)
    return calls


def test_rows_record_how_each_optimisation_went(tiny_run, tmp_path):
    images, config = tiny_run
    rows = run_claim(images, config, tmp_path, progress=False)
    assert len(rows) == 2 * (2 + 4 * 2)  # per image: 2 K-free conditions, then 2 analyses x 2 conditions x 2 K
    for r in rows:
        assert 1 <= r["evals"] <= config.max_evals
        assert r["converged"] == (r["evals"] < config.max_evals) or r["evals"] == config.max_evals
        assert r["loss_final"] <= r["loss_initial"]
    assert {r["converged"] for r in rows} == {True, False}  # this tiny rule stops some early, some at the cap


def test_an_interrupted_run_resumes_to_the_same_rows(tiny_run, tmp_path, monkeypatch):
    images, config = tiny_run
    full = run_claim(images, config, tmp_path / "full", progress=False)
    calls = _count_batches(monkeypatch, fail_after=1)
    with pytest.raises(KeyboardInterrupt):  # during the second image
        run_claim(images, config, tmp_path / "cut", progress=False)
    saved = json.loads((tmp_path / "cut" / "claim.checkpoint.json").read_text())
    assert {r["image"] for r in saved["rows"]} == {"a"}
    calls = _count_batches(monkeypatch)
    resumed = run_claim(images, config, tmp_path / "cut", resume=True, progress=False)
    assert calls == [1]  # only image "b" ran again
    assert _without_time(resumed) == _without_time(full)
    other = ClaimConfig(backbones=config.backbones, ks=(0.1,), size=48, tol=0.1, window=3, max_evals=15, plateaus=2)
    with pytest.raises(ValueError, match=r"other settings \(ks\)"):
        run_claim(images, other, tmp_path / "cut", resume=True, progress=False)


def test_resuming_a_finished_run_reads_every_row_back(tiny_run, tmp_path, monkeypatch):
    images, config = tiny_run
    full = run_claim(images, config, tmp_path, progress=False)
    calls = _count_batches(monkeypatch)
    again = run_claim(images, config, tmp_path, resume=True, progress=False)
    assert calls == [] and again == full  # every field, the evaluations and convergence included


def test_two_images_per_batch_give_every_row(tiny_run, tmp_path, monkeypatch):
    images, config = tiny_run
    calls = _count_batches(monkeypatch)
    batched = ClaimConfig(**{**config.__dict__, "images_per_batch": 2})
    rows = run_claim(images, batched, tmp_path, progress=False)
    assert calls == [2]
    assert len(rows) == 20 and [r["image"] for r in rows] == ["a"] * 10 + ["b"] * 10


@pytest.mark.parametrize("text, message", [
    ('{"format": "topk-plugin.claim-checkpoint", "config": {"size": 4', "truncated or corrupt"),
    ('{"format": "topk-plugin.claim-checkpoint", "config": {}}', "lacks 'rows'"),
    ('{"format": "topk-plugin.claim-checkpoint", "config": {}, "rows": [{"image": "a"}]}', "rows lack 'backbone'"),
    ('{"format": "something-else", "rows": []}', "is not a topk-plugin.claim-checkpoint file"),
    ('[1, 2]', "is not a topk-plugin.claim-checkpoint file"),
    ('\x00\xff binary', "truncated or corrupt"),
])
def test_a_bad_checkpoint_names_the_file_and_the_fix(tiny_run, tmp_path, text, message):
    images, config = tiny_run
    (tmp_path / "claim.checkpoint.json").write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        run_claim(images, config, tmp_path, resume=True, progress=False)
    assert "claim.checkpoint.json" in str(err.value) and "without --resume" in str(err.value)


def test_cli_end_to_end_on_two_photos(tmp_path, capsys):
    pytest.importorskip("skimage")
    out = tmp_path / "claim"
    code = main(["analyze-claim", "--n-cue-conflict", "0", "--photos", "astronaut", "coffee",
                 "--backbone", "squeezenet1_1=random", "--topk", "0.1", "0.2", "--size", "48",
                 "--max-evals", "4", "--out", str(out), "--json"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert len(printed["verdict"]) == 2 and printed["images"] == 2
    assert printed["optimisations"] == 20 and 0 <= printed["not_converged"] <= 20
    with open(out / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * (2 + 4 * 2)
    summary = json.loads((out / "summary.json").read_text())
    entry = next(e for e in summary["entries"] if e["analysis"] == "reconstruct" and e["k"] == 0.2)
    per_image = [float(r["ssim"]) for r in rows if r["condition"] == "topk" and r["k"] == "0.2"]
    assert entry["conditions"]["topk"]["ssim"]["mean"] == pytest.approx(np.mean(per_image))
    lo, hi = entry["difference"]["edge_correlation"]["ci"]
    assert lo <= entry["difference"]["edge_correlation"]["mean"] <= hi
    for name in ("claim_examples.png", "claim_differences.png", "summary.csv", "summary.md"):
        assert (out / name).stat().st_size > 0
    assert (out / "examples" / "squeezenet1_1" / "astronaut" / "reconstruct_topk_k0.1.png").is_file()
    assert not (out / "examples" / "squeezenet1_1" / "coffee").exists()  # one example per source by default


@pytest.mark.parametrize("argv, message", [
    (["--photos", "astronaut"], "--n-cue-conflict needs --cue-conflict"),
    (["--n-cue-conflict", "0", "--photos", "astronaut", "--examples", "cat"], "are not among"),
    (["--n-cue-conflict", "0", "--photos"], "no images"),
    (["--n-cue-conflict", "0", "--photos", "astronaut", "--topk", "0"], "--topk 0 is not a fraction"),
])
def test_cli_errors_name_the_fix(argv, message, tmp_path, capsys):
    code = main(["analyze-claim", "--backbone", "squeezenet1_1=random", "--out", str(tmp_path), *argv])
    assert code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("px", [64, 256])
def test_the_examples_figure_keeps_its_title_clear_of_the_column_titles(tmp_path, px):
    """At 256 px tight_layout pulled the column titles up under the figure's title (it ignores a suptitle)."""
    import matplotlib.pyplot as plt  # here, after the library chose the Agg backend

    picture = Image.fromarray(np.zeros((px, px, 3), np.uint8))
    for image in ("a", "b"):
        (tmp_path / "examples" / "net" / image).mkdir(parents=True)
        picture.save(tmp_path / "examples" / "net" / image / "target.png")
        for analysis, (free, *masked) in ANALYSES.items():
            picture.save(example_path(tmp_path, "net", image, analysis, free, None))
            for cond in masked:
                picture.save(example_path(tmp_path, "net", image, analysis, cond, 0.1))
    fig = examples_figure(tmp_path, ["net"], ["a", "b"], 0.1)
    try:
        renderer = fig.canvas.get_renderer()
        title = next(t for t in fig.texts if t.get_text() == fig.get_suptitle()).get_window_extent(renderer)
        column_titles = [ax.title.get_window_extent(renderer) for ax in fig.axes if ax.get_title()]
        assert len(column_titles) == 7
        assert all(t.y1 <= title.y0 for t in column_titles), (title, column_titles)
    finally:
        plt.close(fig)
