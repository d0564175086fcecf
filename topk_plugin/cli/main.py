"""Entry point: one subcommand per job, each in its own module."""
from __future__ import annotations

import argparse
import sys

from . import analysis, claim, fastgan, fid, search_placement, shape_bias, stylize, train

SUBCOMMANDS = [shape_bias, search_placement, analysis, claim, fastgan, fid, train, stylize]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="topk-plugin",
        description="Spatial Top-K activation sparsity for timm and torchvision models.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (ValueError, FileNotFoundError) as err:  # user errors: one clear line
        print(f"topk-plugin {args.command}: error: {err}", file=sys.stderr)
        return 2
