"""``topk-plugin fastgan train|sample``: FastGAN with Top-K on a generator block (paper section 4.4).

Needs a FastGAN-pytorch checkout (GPL-3.0, not on PyPI): ``--fastgan-dir``
or ``$FASTGAN_DIR``. The integration is imported inside ``run`` only.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torchvision.utils import save_image

from .._io import json_safe
from .argtypes import bounded_float, default_workers, positive_int
from .integration import load_integration

HELP = "train FastGAN with Top-K on a generator block, or sample from a checkpoint (paper 4.4)"


_fraction_or_zero = bounded_float(0, 1, "{} is not a fraction in [0, 1] (0 means dense, paper: 0.05)")


def add_parser(sub) -> None:
    p = sub.add_parser("fastgan", help=HELP, description=HELP)
    cmds = p.add_subparsers(dest="fastgan_command", required=True, metavar="{train,sample}")

    t = cmds.add_parser("train", help="train (or resume) a run", description=(
        "Train upstream FastGAN's Generator/Discriminator with our loop (upstream's recipe; see "
        "topk_plugin.integrations.fastgan_train). Paper: --im-size 256 --batch-size 8 --iters 100000 "
        "--no-noise, with --topk 0.05 vs --topk 0."))
    t.add_argument("--fastgan-dir", metavar="DIR", help="FastGAN-pytorch checkout (default: $FASTGAN_DIR)")
    t.add_argument("--data", required=True, metavar="DIR", help="folder of training images (any case of .jpg/.png/...), or an upstream lmdb")
    t.add_argument("--topk", type=_fraction_or_zero, default=0.05, metavar="F", help="Top-K fraction; 0 = dense baseline (default: 0.05)")
    t.add_argument("--layer", default="feat_32", metavar="NAME", help="generator block to sparsify (default: feat_32)")
    t.add_argument("--topk-mode", choices=("keep", "mean"), default="keep", help="keep values, or mean replacement")
    t.add_argument("--rank-by", choices=("abs", "value"), default="abs", help="rank by |x| (paper) or by value")
    t.add_argument("--im-size", type=int, default=256, choices=(256, 512, 1024), metavar="PX", help="256, 512 or 1024 (default: 256)")
    t.add_argument("--iters", type=positive_int, default=100_000, metavar="N", help="total iterations (default: 100000)")
    t.add_argument("--batch-size", type=positive_int, default=8, metavar="N")
    t.add_argument("--out", default="fastgan-run", metavar="DIR", help="run folder (default: fastgan-run)")
    t.add_argument("--no-noise", action="store_true", help="turn off noise injection (the paper's runs)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from checkpoint.pt")
    t.add_argument("--recon-loss", choices=("lpips", "l1"), default="lpips",
                   help="discriminator reconstruction loss: upstream's LPIPS (needs VGG16 weights) or L1 (offline)")
    t.add_argument("--ngf", type=positive_int, default=64, help="generator width (upstream: 64)")
    t.add_argument("--ndf", type=positive_int, default=64, help="discriminator width (upstream: 64)")
    t.add_argument("--save-every", type=positive_int, default=5000, metavar="N", help="checkpoint interval")
    t.add_argument("--sample-every", type=positive_int, default=1000, metavar="N", help="sample-grid interval")
    t.add_argument("--workers", type=int, default=default_workers(),
                   help="image decoding processes (0: in the main process; default: 2, at most the CPUs available)")
    t.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--json", action="store_true", help="print one JSON object with the run summary")
    t.set_defaults(run=run_train)

    s = cmds.add_parser("sample", help="write N images from a generator checkpoint")
    s.add_argument("--checkpoint", required=True, metavar="FILE", help="generator_*.pt, checkpoint.pt, or upstream's N.pth")
    s.add_argument("--n", type=positive_int, default=64, metavar="N", help="number of images (default: 64)")
    s.add_argument("--out", required=True, metavar="DIR", help="folder for 00000.png, 00001.png, ...")
    s.add_argument("--fastgan-dir", metavar="DIR", help="FastGAN checkout (default: the one used for training, then $FASTGAN_DIR)")
    s.add_argument("--topk", type=_fraction_or_zero, default=None, metavar="F", help="override / set Top-K (upstream checkpoints have none)")
    s.add_argument("--layer", default=None, metavar="NAME", help="override the Top-K block")
    s.add_argument("--batch-size", type=positive_int, default=16)
    s.add_argument("--bn", choices=("batch", "running"), default="batch",
                   help="BatchNorm statistics: batch (upstream's eval.py) or running")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--grid", action="store_true", help="also write grid.jpg")
    s.add_argument("--device", default=None)
    s.add_argument("--json", action="store_true")
    s.set_defaults(run=run_sample)


def run_train(args: argparse.Namespace) -> int:
    fastgan_train = load_integration("fastgan_train")
    TrainConfig, train = fastgan_train.TrainConfig, fastgan_train.train

    config = TrainConfig(
        fastgan_dir=args.fastgan_dir, data=args.data, out=args.out, topk=args.topk, layer=args.layer,
        topk_mode=args.topk_mode, rank_by=args.rank_by, im_size=args.im_size, iters=args.iters,
        batch_size=args.batch_size, ngf=args.ngf, ndf=args.ndf, noise=not args.no_noise,
        recon_loss=args.recon_loss, save_every=args.save_every, sample_every=args.sample_every,
        workers=args.workers, device=args.device, seed=args.seed, resume=args.resume,
    )
    if config.fastgan_dir is None:
        import os

        config.fastgan_dir = os.environ.get("FASTGAN_DIR") or ""
        if not config.fastgan_dir:
            raise FileNotFoundError("no FastGAN-pytorch checkout: pass --fastgan-dir DIR or set FASTGAN_DIR")
    try:
        summary = train(config, progress=not args.json or sys.stderr.isatty(),
                        log=lambda m: print(m, file=sys.stderr))
    except (RuntimeError, ImportError) as error:  # LPIPS set-up, lmdb missing
        print(f"topk-plugin fastgan train: error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(json_safe(summary)))
    else:
        print(f"iteration {summary['iteration']} ({summary['iterations_run']} run, {summary['seconds']:.1f} s) "
              f"-> {summary['checkpoint']}, {summary['generator']}")
    return 0


def run_sample(args: argparse.Namespace) -> int:
    fastgan = load_integration("fastgan")
    generate, load_generator = fastgan.generate, fastgan.load_generator

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    netG, cfg = load_generator(args.checkpoint, args.fastgan_dir, device=device, topk=args.topk, layer=args.layer)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    i = 0
    first = []
    for batch in generate(netG, args.n, nz=cfg["nz"], batch_size=args.batch_size, seed=args.seed,
                          device=device, bn=args.bn):
        for image in batch:
            save_image(image.float().div(255), out / f"{i:05d}.png")
            if args.grid and len(first) < 64:
                first.append(image)
            i += 1
    if args.grid:
        save_image(torch.stack(first).float().div(255), out / "grid.jpg", nrow=8)
    summary = {"out": str(out), "n": i, "im_size": cfg["im_size"], "topk": cfg.get("topk"),
               "layer": cfg.get("layer"), "iteration": cfg.get("iteration")}
    if args.json:
        print(json.dumps(json_safe(summary)))
    else:
        print(f"wrote {i} images to {out}/")
    return 0
