"""Entry point: one subcommand per job, each in its own module."""
from __future__ import annotations

import argparse
import sys

from . import analysis, claim, fastgan, fid, search_placement, shape_bias, stylize, train, tune

SUBCOMMANDS = [shape_bias, search_placement, analysis, claim, fastgan, fid, train, stylize, tune]
DISTRIBUTED = ("shape-bias", "search-placement")  # the commands that run under torchrun


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
    from .. import distributed

    parser = build_parser()
    args = parser.parse_args(argv)
    # under torchrun (WORLD_SIZE > 1): join the group; evaluators shard, rank 0 writes
    env = distributed.setup(getattr(args, "device", None)) if args.command in DISTRIBUTED else None
    try:
        return int(args.run(args) or 0)
    except (ValueError, FileNotFoundError, distributed.RankError) as err:  # user errors: one clear line
        print(f"topk-plugin {args.command}: error: {err}", file=sys.stderr)
        return 2
    finally:
        if env is not None:
            distributed.teardown(env)
