"""FastGAN integration: the Top-K patch, noise switch, training runner, sampling.

Upstream FastGAN-pytorch (GPL-3.0) never enters the repository: these tests
write a small stand-in "checkout" (our own code) with FastGAN's module names
and data flow: ``init`` -> ``feat_8`` -> ``feat_16`` -> ``feat_32`` ->
``feat_64`` (x ``se_64`` from ``init``) -> ... -> ``to_big``/``to_128``, a
Discriminator with upstream's call signature, and a ``DiffAugment``. Tests
against a real checkout run when ``FASTGAN_DIR`` points at one.
"""
from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from topk_plugin.integrations import fastgan as fg
from topk_plugin.integrations.fastgan_train import TrainConfig, train

STANDIN_MODELS = textwrap.dedent('''
    """Stand-in with FastGAN's block names and wiring (not upstream's code)."""
    import torch
    import torch.nn.functional as F
    from torch import nn


    def weights_init(m):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.3)


    class NoiseInjection(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(1))

        def forward(self, feat, noise=None):
            if noise is None:
                noise = torch.randn(feat.shape[0], 1, *feat.shape[2:], device=feat.device)
            return feat + self.weight * noise


    class Gate(nn.Module):
        def forward(self, x):
            value, gate = x.chunk(2, dim=1)
            return value * torch.sigmoid(gate)


    def up(cin, cout, noisy):
        layers = [nn.Upsample(scale_factor=2), nn.Conv2d(cin, 2 * cout, 3, padding=1)]
        if noisy:
            layers.append(NoiseInjection())
        return nn.Sequential(*layers, nn.BatchNorm2d(2 * cout), Gate())


    class Excite(nn.Module):
        def __init__(self, c_small, c_big):
            super().__init__()
            self.main = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c_small, c_big, 1), nn.Sigmoid())

        def forward(self, small, big):
            return big * self.main(small)


    class Init(nn.Module):
        def __init__(self, nz, c):
            super().__init__()
            self.init = nn.Sequential(nn.ConvTranspose2d(nz, 2 * c, 4), nn.BatchNorm2d(2 * c), Gate())

        def forward(self, z):
            return self.init(z.view(z.shape[0], -1, 1, 1))


    class Generator(nn.Module):
        def __init__(self, ngf=64, nz=100, nc=3, im_size=256):
            super().__init__()
            mult = {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5}
            ch = {r: max(1, int(m * ngf)) for r, m in mult.items()}
            self.im_size = im_size
            self.init = Init(nz, ch[4])
            for r, noisy in ((8, True), (16, False), (32, True), (64, False), (128, True), (256, False)):
                setattr(self, f"feat_{r}", up(ch[r // 2], ch[r], noisy))
            self.se_64 = Excite(ch[4], ch[64])
            self.se_128 = Excite(ch[8], ch[128])
            self.se_256 = Excite(ch[16], ch[256])
            self.to_128 = nn.Conv2d(ch[128], nc, 1)
            self.to_big = nn.Conv2d(ch[256], nc, 3, padding=1)

        def forward(self, z):
            f4 = self.init(z)
            f8 = self.feat_8(f4)
            f16 = self.feat_16(f8)
            f32 = self.feat_32(f16)
            f64 = self.se_64(f4, self.feat_64(f32))
            f128 = self.se_128(f8, self.feat_128(f64))
            f256 = self.se_256(f16, self.feat_256(f128))
            return [self.to_big(f256), self.to_128(f128)]


    def _down(cin, cout, factor):
        return nn.Sequential(nn.Conv2d(cin, cout, factor, factor), nn.LeakyReLU(0.2))


    class Discriminator(nn.Module):
        def __init__(self, ndf=64, nc=3, im_size=256):
            super().__init__()
            self.im_size = im_size
            self.down_from_big = nn.Sequential(_down(nc, ndf, 4), _down(ndf, ndf, im_size // 64))
            self.down_from_small = nn.Sequential(_down(nc, ndf, 4), _down(ndf, ndf, 2))
            self.rf_big = nn.Conv2d(ndf, 1, 16)
            self.rf_small = nn.Conv2d(ndf, 1, 16)
            self.decoder_big = nn.Sequential(nn.Conv2d(ndf, nc, 3, padding=1), nn.Tanh())
            self.decoder_small = nn.Sequential(nn.Conv2d(ndf, nc, 3, padding=1), nn.Tanh())
            self.decoder_part = nn.Sequential(nn.Conv2d(ndf, nc, 3, padding=1), nn.Tanh())

        def forward(self, imgs, label, part=None):
            if not isinstance(imgs, list):
                imgs = [F.interpolate(imgs, size=self.im_size), F.interpolate(imgs, size=128)]
            big = self.down_from_big(imgs[0])
            small = self.down_from_small(imgs[1])
            pred = torch.cat([self.rf_big(big).view(-1), self.rf_small(small).view(-1)])
            if label != "real":
                return pred
            rows = slice(0, 8) if part < 2 else slice(8, 16)
            cols = slice(0, 8) if part % 2 == 0 else slice(8, 16)
            quarter = big[:, :, rows, cols]
            return pred, [self.decoder_big(big), self.decoder_small(small), self.decoder_part(quarter)]
''')

STANDIN_DIFFAUG = textwrap.dedent('''
    import torch


    def DiffAugment(x, policy="", channels_first=True):
        if "color" in policy:
            x = x + (torch.rand(x.shape[0], 1, 1, 1, device=x.device) - 0.5) * 0.2
        return x
''')


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fastgan_standin")
    (root / "models.py").write_text(STANDIN_MODELS)
    (root / "diffaug.py").write_text(STANDIN_DIFFAUG)
    return root


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Six small images with mixed extension case, as ImageNet's .JPEG files have."""
    from PIL import Image

    root = tmp_path_factory.mktemp("fewshot")
    gen = torch.Generator().manual_seed(0)
    for i, ext in enumerate([".JPEG", ".jpg", ".png", ".PNG", ".jpeg", ".JPEG"]):
        pixels = (torch.rand(40, 48, 3, generator=gen) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(root / f"img{i}{ext}", format="PNG" if "png" in ext.lower() else "JPEG")
    (root / "notes.txt").write_text("not an image")
    return root


BLOCKS = ["init", "feat_8", "feat_16", "feat_32", "feat_64", "feat_128", "feat_256", "se_64", "se_128", "se_256"]


def _outputs(netG, z) -> tuple[dict, list]:
    seen = {}
    handles = [getattr(netG, b).register_forward_hook(lambda m, i, o, b=b: seen.__setitem__(b, o.detach().clone()))
               for b in BLOCKS if hasattr(netG, b)]
    try:  # batch statistics (the generator is untrained), buffers restored after
        with torch.no_grad(), fg.batchnorm_mode(netG, "batch"):
            out = netG(z)
    finally:
        for h in handles:
            h.remove()
    return seen, out


def _generator(checkout, ngf=8, im_size=256, **kw):
    torch.manual_seed(0)
    return fg.build_generator(checkout, im_size=im_size, ngf=ngf, nz=16, topk=0, **kw).eval()


def _check_patch(netG, nz: int) -> None:
    z = torch.randn(3, nz, generator=torch.Generator().manual_seed(1))
    dense, dense_out = _outputs(netG, z)
    assert (dense["feat_32"] != 0).all(), "the check needs a dense feat_32 output"
    handle = fg.patch_generator(netG, 0.05, "feat_32")
    sparse, _ = _outputs(netG, z)
    n, c, h, w = sparse["feat_32"].shape
    assert (h, w) == (32, 32)
    k = int(0.05 * h * w)  # 51
    assert ((sparse["feat_32"] != 0).flatten(2).sum(-1) == k).all()
    kept = sparse["feat_32"] != 0
    assert torch.equal(sparse["feat_32"][kept], dense["feat_32"][kept])
    # the kept entries are the K largest |x|
    kth = dense["feat_32"].abs().flatten(2).topk(k, dim=-1).values[..., -1:]
    assert (sparse["feat_32"].abs().flatten(2)[kept.flatten(2)].view(n, c, k) >= kth).all()
    for block in ("init", "feat_8", "feat_16"):  # upstream of feat_32: untouched
        assert torch.equal(sparse[block], dense[block]), block
    assert not torch.equal(sparse["feat_64"], dense["feat_64"])  # the sparse map is what feat_64 sees
    assert list(fg.patched_layers(netG)) == ["feat_32"]
    handle.remove()
    assert fg.patched_layers(netG) == {}
    assert type(netG.feat_32) is nn.Sequential and "topk" not in netG.feat_32._modules
    _, restored = _outputs(netG, z)
    assert all(torch.equal(a, b) for a, b in zip(restored, dense_out, strict=True))


def test_patch_feat32_exact_k_others_untouched_unpatch_restores(standin):
    _check_patch(_generator(standin), nz=16)


def test_patch_under_data_parallel_and_state_dict_unchanged(standin):
    netG = _generator(standin)
    keys = list(netG.state_dict())
    z = torch.randn(2, 16)
    wrapped = nn.DataParallel(netG)
    with fg.patch_generator(wrapped, 0.05):
        assert list(fg.patched_layers(wrapped)) == ["feat_32"]
        assert list(netG.state_dict()) == keys  # checkpoints load into plain and patched generators
        with torch.no_grad():
            a = wrapped(z)[0]
            b = netG(z)[0]
        assert torch.equal(a, b)
    assert fg.patched_layers(netG) == {}
    fg.patch_generator(wrapped, 0.1, ["feat_32", "feat_16"], method="hook", mode="mean")
    assert set(fg.patched_layers(netG)) == {"feat_32", "feat_16"}
    fg.unpatch_generator(wrapped)
    assert fg.patched_layers(netG) == {}


@pytest.mark.parametrize("k", [0, 0.0, 1.5, -0.1, float("nan")])
def test_k_out_of_range(standin, k):
    netG = _generator(standin)
    with pytest.raises(ValueError, match="k="):
        fg.patch_generator(netG, k)
    assert fg.patched_layers(netG) == {}


def test_unknown_layer_and_bad_checkout(standin, tmp_path):
    netG = _generator(standin)
    with pytest.raises(ValueError, match="no block 'feat_33'.*feat_32"):
        fg.patch_generator(netG, 0.05, "feat_33")
    with pytest.raises(fg.FastGANCheckoutError, match="not a directory"):
        fg.import_upstream(tmp_path / "missing")
    with pytest.raises(fg.FastGANCheckoutError, match="no models.py"):
        fg.import_upstream(tmp_path)
    with pytest.raises(ValueError, match="im_size"):
        fg.build_generator(standin, im_size=128)


def test_disable_noise_keeps_state_dict(standin):
    netG = _generator(standin)
    keys = list(netG.state_dict())
    for m in netG.modules():
        if type(m).__name__ == "NoiseInjection":
            m.weight.data.fill_(1.0)
    z = torch.randn(2, 16)
    with torch.no_grad():
        assert not torch.equal(netG(z)[0], netG(z)[0])  # noise on
    assert fg.disable_noise(netG) == 3 and fg.noise_disabled(netG)
    with torch.no_grad():
        assert torch.equal(netG(z)[0], netG(z)[0])
    assert list(netG.state_dict()) == keys
    assert all(not m.weight.requires_grad and m.weight.item() == 0
               for m in netG.modules() if type(m).__name__ == "NoiseInjection")


def _config(standin, images, out, **kw) -> TrainConfig:
    base = dict(fastgan_dir=str(standin), data=str(images), out=str(out), im_size=256, iters=3, batch_size=2,
                nz=16, ngf=4, ndf=4, recon_loss="l1", save_every=2, sample_every=2, log_every=1, workers=0,
                device="cpu", seed=3, noise=False)
    base.update(kw)
    return TrainConfig(**base)


def test_train_writes_files_and_resumes_exactly(standin, images, tmp_path):
    straight = train(_config(standin, images, tmp_path / "a"), progress=False)
    assert straight["iteration"] == 3
    a = tmp_path / "a"
    assert sorted(p.name for p in (a / "generators").iterdir()) == ["generator_000002.pt", "generator_000003.pt"]
    assert sorted(p.name for p in (a / "samples").iterdir()) == ["000002.jpg", "000003.jpg"]
    assert json.loads((a / "config.json").read_text())["topk"] == 0.05
    assert len((a / "log.jsonl").read_text().splitlines()) == 3
    assert not [p for p in a.rglob("*.tmp")]  # atomic writes leave no temporaries

    train(_config(standin, images, tmp_path / "b", iters=2), progress=False)
    with pytest.raises(ValueError, match="--resume"):
        train(_config(standin, images, tmp_path / "b"), progress=False)
    with pytest.raises(ValueError, match="topk"):
        train(_config(standin, images, tmp_path / "b", topk=0.1, resume=True), progress=False)
    resumed = train(_config(standin, images, tmp_path / "b", resume=True), progress=False)
    assert resumed["iterations_run"] == 1 and resumed["iteration"] == 3

    ck_a = torch.load(a / "checkpoint.pt", weights_only=True)
    ck_b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    for part in ("g", "d", "g_ema"):
        assert ck_a[part].keys() == ck_b[part].keys()
        for key in ck_a[part]:
            assert torch.equal(ck_a[part][key], ck_b[part][key]), (part, key)
    assert ck_a["iteration"] == ck_b["iteration"] == 3


def test_train_input_errors(standin, images, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="no images found"):
        train(_config(standin, empty, tmp_path / "o1"), progress=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train(_config(standin, tmp_path / "nope", tmp_path / "o2"), progress=False)
    with pytest.raises(fg.FastGANCheckoutError):
        train(_config(tmp_path, images, tmp_path / "o3"), progress=False)
    with pytest.raises(ValueError, match="topk"):
        train(_config(standin, images, tmp_path / "o4", topk=1.5), progress=False)
    with pytest.raises(RuntimeError, match="--recon-loss l1"):  # the stand-in has no lpips/
        train(_config(standin, images, tmp_path / "o5", recon_loss="lpips"), progress=False)


def _cli(*argv) -> int:
    """``topk-plugin ARGV...`` in-process (paths and numbers as strings)."""
    from topk_plugin.cli.main import main

    return main([str(a) for a in argv])


def test_cli_train_then_sample(standin, images, tmp_path, capsys):
    run = tmp_path / "run"
    assert _cli("fastgan", "train", "--fastgan-dir", standin, "--data", images, "--iters", 2, "--batch-size", 2,
                "--ngf", 4, "--ndf", 4, "--recon-loss", "l1", "--workers", 0, "--device", "cpu",
                "--out", run, "--no-noise", "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["iteration"] == 2 and Path(summary["generator"]).is_file()

    out = tmp_path / "samples"
    assert _cli("fastgan", "sample", "--checkpoint", summary["generator"], "--n", 5, "--out", out,
                "--batch-size", 2, "--device", "cpu", "--json") == 0
    assert json.loads(capsys.readouterr().out)["n"] == 5
    files = sorted(out.glob("*.png"))
    assert [f.name for f in files] == [f"{i:05d}.png" for i in range(5)]
    from PIL import Image

    assert Image.open(files[0]).size == (256, 256)

    netG, cfg = fg.load_generator(summary["generator"], device="cpu")
    assert cfg["topk"] == 0.05 and list(fg.patched_layers(netG)) == ["feat_32"] and fg.noise_disabled(netG)
    first = torch.cat(list(fg.generate(netG, 3, nz=cfg["nz"], batch_size=2, seed=7)))
    again = torch.cat(list(fg.generate(netG, 3, nz=cfg["nz"], batch_size=2, seed=7)))
    assert first.dtype == torch.uint8 and first.shape == (3, 3, 256, 256) and torch.equal(first, again)


def test_fid_of_a_generator_checkpoint(standin, images, tmp_path):
    pytest.importorskip("torch_fidelity")
    from topk_plugin.integrations.fidelity import fid_kid, register_module_extractor

    train(_config(standin, images, tmp_path / "r", iters=1, save_every=1), progress=False)

    def tiny():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 8, 4, 4), nn.ReLU(), nn.AdaptiveAvgPool2d(1))

    name = register_module_extractor("test-fastgan-tiny", tiny, input_size=32, mean=(0.5,) * 3, std=(0.5,) * 3)
    result = fid_kid(tmp_path / "r" / "generators" / "generator_000001.pt", images, num_samples=10, repeats=2,
                     feature_extractor=name, device="cpu", batch_size=5, workers=False)
    assert result["image_size"] == 256 and result["kid_subset_size"] == 6  # capped at the 6 real images
    assert [r["num_samples"] for r in result["runs"]] == [10, 10]
    assert result["fid_mean"] > 0 and result["runs"][0]["fid"] != result["runs"][1]["fid"]


# --- against a real FastGAN-pytorch checkout ------------------------------------------------

REAL = os.environ.get("FASTGAN_DIR")
needs_checkout = pytest.mark.skipif(not REAL, reason="set FASTGAN_DIR to a FastGAN-pytorch checkout")


@needs_checkout
def test_real_generator_patch():
    netG = fg.build_generator(REAL, im_size=256, ngf=16, nz=256, topk=0).eval()
    _check_patch(netG, nz=256)


@needs_checkout
@pytest.mark.slow
def test_real_checkout_trains_two_iterations(images, tmp_path):
    summary = train(TrainConfig(fastgan_dir=REAL, data=str(images), out=str(tmp_path / "run"), iters=2,
                                batch_size=2, ngf=16, ndf=16, recon_loss="l1", workers=0, device="cpu",
                                noise=False), progress=False)
    assert summary["iteration"] == 2 and Path(summary["generator"]).is_file()
    netG, cfg = fg.load_generator(summary["generator"])
    assert list(fg.patched_layers(netG)) == ["feat_32"] and cfg["ngf"] == 16
