"""The three subcommands end to end (registered here; cli/main.py lists them in SUBCOMMANDS)."""
import importlib
import json

import pytest
from PIL import Image

from topk_plugin.analysis.convergence import StopRule
from topk_plugin.cli import analysis

cli_main = importlib.import_module("topk_plugin.cli.main")


@pytest.fixture
def main(monkeypatch):
    if analysis not in cli_main.SUBCOMMANDS:
        monkeypatch.setattr(cli_main, "SUBCOMMANDS", [*cli_main.SUBCOMMANDS, analysis])
    return cli_main.main


@pytest.fixture
def image_file(tmp_path, target):
    path = tmp_path / "square.png"
    Image.fromarray((target[0].permute(1, 2, 0).numpy() * 255).astype("uint8")).save(path)
    return path


def test_parser_options():
    import argparse

    parser = argparse.ArgumentParser()
    analysis.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["texture-synthesis", "--image", "x.png"])
    rule = StopRule()
    assert (args.model, args.lr, args.size, args.topk, args.optimizer, args.device) == ("vgg16", None, 256, 0.05, "adam", None)
    assert (args.tol, args.window, args.max_evals) == (rule.tol, rule.window, rule.max_evals)
    args = parser.parse_args(["reconstruct", "--image", "x.png", "--topk", "3", "--max-evals", "50", "--tol", "0"])
    assert (args.max_evals, args.tol, args.topk) == (50, 0.0, 3)
    for bad in (["--window", "0"], ["--tol", "1"], ["--max-evals", "-1"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["reconstruct", "--image", "x.png", *bad])
    assert isinstance(parser.parse_args(["masks", "--image", "x", "--model", "m", "--topk", "1.0"]).topk, float)


@pytest.mark.parametrize("command", ["texture-synthesis", "reconstruct"])
def test_json_output(main, image_file, tmp_path, capsys, command):
    out = tmp_path / "out"
    rc = main([command, "--image", str(image_file), "--model", "squeezenet1_1", "--weights", "random",
               "--size", "64", "--max-evals", "3", "--topk", "0.2", "--out", str(out), "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)  # exactly one JSON object
    assert summary["kind"] == command and summary["size"] == [64, 64]
    assert len(summary["conditions"]) == 3
    for name, cond in summary["conditions"].items():
        assert Image.open(cond["image"]).size == (64, 64)
        # the best of 3 Adam evaluations, the first being the start
        assert cond["evals"] == 3 and cond["converged"] is False
        assert cond["loss_final"] <= cond["loss_initial"]
        if name in ("all", "identity"):
            assert cond["loss_final"] < cond["loss_initial"]
    assert summary["not_converged"] == list(summary["conditions"])
    assert Image.open(summary["grid"]).height > 64
    with open(summary["json"]) as f:
        assert json.load(f)["conditions"].keys() == summary["conditions"].keys()


def test_masks_command(main, image_file, tmp_path, capsys):
    rc = main(["masks", "--image", str(image_file), "--model", "squeezenet1_1", "--weights", "random",
               "--layer", "features.2", "--size", "64", "--topk", "0.1", "--out", str(tmp_path), "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["layer"] == "features.2" and summary["shape"] == [1, 64, 15, 15]
    assert summary["k"] == 22 and summary["kept_fraction"] == pytest.approx(22 / 225)
    for key in ("tiled", "overlay", "json"):
        assert (tmp_path / summary["paths"][key].split("/")[-1]).exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--image", "missing.png"], "does not exist"),
        (["--image", "{bad}"], "cannot read image"),
        (["--image", "{good}", "--layer", "features.55"], "closest names: 'features.5'"),
        (["--image", "{good}", "--weights", "missing.pth"], "weights file"),
    ],
)
def test_clear_errors(main, image_file, tmp_path, capsys, argv, message):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    argv = [a.format(bad=bad, good=image_file) for a in argv]
    rc = main(["masks", "--model", "squeezenet1_1", "--out", str(tmp_path), *argv]
              + ([] if "--weights" in argv else ["--weights", "random"]))
    assert rc == 2
    assert message in capsys.readouterr().err


def test_missing_pretrained_weights_name_the_option(monkeypatch):
    """Offline, torchvision cannot download VGG16: the error says what to pass."""
    import torchvision

    from topk_plugin.analysis import BackboneError, load_backbone

    def offline(*a, **k):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.models, "get_model_builder", lambda name: offline)
    with pytest.raises(BackboneError, match="--weights FILE"):
        load_backbone("vgg16")


def test_random_weights_repeat():
    """--weights random is seeded: the same untrained network every time, whatever the global RNG."""
    import torch

    from topk_plugin.analysis.backbones import load_backbone

    torch.manual_seed(1)
    a = load_backbone("squeezenet1_1", "random")
    torch.manual_seed(2)
    b = load_backbone("squeezenet1_1", "random")
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    after_build = torch.rand(1)  # the caller's RNG stream is left as it was
    torch.manual_seed(2)
    assert torch.equal(after_build, torch.rand(1))
