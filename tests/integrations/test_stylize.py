"""topk-plugin stylize (AdaIN): layout of the AdaIN weight files, the AdaIN op, folder mechanics with random weights."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from topk_plugin.cli.main import main
from topk_plugin.integrations import stylize as st

# Conv positions in the AdaIN project's nn.Sequential files (vgg_normalised.pth, decoder.pth), written out.
ENCODER_CONVS = {0: (3, 3, 1), 2: (64, 3, 3), 5: (64, 64, 3), 9: (128, 64, 3), 12: (128, 128, 3), 16: (256, 128, 3),
                 19: (256, 256, 3), 22: (256, 256, 3), 25: (256, 256, 3), 29: (512, 256, 3)}
DECODER_CONVS = {1: (256, 512, 3), 5: (256, 256, 3), 8: (256, 256, 3), 11: (256, 256, 3), 14: (128, 256, 3),
                 18: (128, 128, 3), 21: (64, 128, 3), 25: (64, 64, 3), 28: (3, 64, 3)}


def _convs(net):
    return {int(k.split(".")[0]): (tuple(v.shape[:2]) + (v.shape[-1],)) for k, v in net.state_dict().items()
            if k.endswith("weight")}


def test_state_dict_layout_matches_the_adain_files():
    assert _convs(st.build_encoder()) == ENCODER_CONVS
    assert _convs(st.build_decoder()) == DECODER_CONVS
    x = torch.rand(1, 3, 24, 32)
    with torch.no_grad():
        features = st.build_encoder()(x)
        assert features.shape == (1, 512, 3, 4)  # relu4_1 at 1/8
        assert st.build_decoder()(features).shape == (1, 3, 24, 32)


def test_adain_gives_content_the_style_statistics():
    g = torch.Generator().manual_seed(0)
    content, style = torch.randn(2, 8, 5, 6, generator=g), torch.randn(2, 8, 7, 3, generator=g) * 3 + 1
    out = st.adain(content, style, eps=0)
    torch.testing.assert_close(out.flatten(2).mean(2), style.flatten(2).mean(2))
    torch.testing.assert_close(out.flatten(2).std(2), style.flatten(2).std(2))


def _images(root, names, seed, size=(20, 28)):
    rng = np.random.default_rng(seed)
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return root


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    encoder, decoder = tmp_path / "vgg_normalised.pth", tmp_path / "decoder.pth"
    full_vgg = dict(st.build_encoder().state_dict())
    full_vgg.update({"32.weight": torch.zeros(512, 512, 3, 3), "32.bias": torch.zeros(512)})  # layers after relu4_1
    torch.save(full_vgg, encoder)
    torch.save(st.build_decoder().state_dict(), decoder)
    return encoder, decoder


def test_folder_keeps_layout_and_resumes(tmp_path, weights):
    content = _images(tmp_path / "val", ["a/0.png", "a/1.JPEG", "b/2.png"], 0)
    style = _images(tmp_path / "styles", ["s0.jpg", "s1.png", "s2.png"], 1, size=(16, 16))
    out = tmp_path / "stylized"
    summary = st.stylize_folder(content, style, *weights, out, content_size=0, style_size=0, progress=False)
    assert summary["written"] == 3
    for rel in ("a/0.png", "a/1.JPEG", "b/2.png"):
        with Image.open(out / rel) as image, Image.open(content / rel) as original:
            assert image.size == original.size  # content_size=0: the content's own size
            assert image.format == ("JPEG" if rel.endswith("JPEG") else "PNG")
    pairs = json.loads((out / "stylize.json").read_text())["pairs"]
    assert set(pairs) == {"a/0.png", "a/1.JPEG", "b/2.png"} and set(pairs.values()) <= {"s0.jpg", "s1.png", "s2.png"}

    first = (out / "a" / "0.png").read_bytes()
    (out / "b" / "2.png").unlink()  # as if interrupted before the last image
    again = st.stylize_folder(content, style, *weights, out, content_size=0, style_size=0, progress=False)
    assert (again["written"], again["skipped_existing"]) == (1, 2)
    assert (out / "a" / "0.png").read_bytes() == first
    assert json.loads((out / "stylize.json").read_text())["pairs"] == pairs  # the pairing is seeded


def test_alpha_zero_and_one_differ(tmp_path, weights):
    enc, dec = st.load_networks(*weights, device="cpu")
    g = torch.Generator().manual_seed(2)
    content, style = torch.rand(1, 3, 24, 24, generator=g), torch.rand(1, 3, 16, 16, generator=g)
    plain = st.stylize(enc, dec, content, style, alpha=0.0)
    torch.testing.assert_close(plain, dec(enc(content)).clamp(0, 1))  # alpha 0: the content's own features
    assert not torch.equal(plain, st.stylize(enc, dec, content, style, alpha=1.0))


def test_missing_or_wrong_weights_fail_clearly(tmp_path, weights, capsys):
    encoder, decoder = weights
    content = _images(tmp_path / "val", ["a/0.png"], 0)
    missing = tmp_path / "nowhere" / "vgg_normalised.pth"
    with pytest.raises(FileNotFoundError, match="encoder weights not found: .*nowhere.*pytorch-AdaIN"):
        st.load_networks(missing, decoder)
    with pytest.raises(ValueError, match="decoder.pth does not fit the AdaIN encoder layout"):
        st.load_networks(decoder, decoder)
    code = main(["stylize", "--content", str(content), "--style", str(content), "--encoder", str(encoder),
                 "--decoder", str(tmp_path / "decoder_missing.pth"), "--out", str(tmp_path / "o")])
    assert code == 2 and "decoder_missing.pth" in capsys.readouterr().err
