"""Entry point: one subcommand per job, each in its own module.

Every failure ends in one line on stderr, never a traceback: mistakes in the
input (exit status 2) say what is wrong and what to do; Ctrl-C (exit status
130) says how to continue where the command can resume; anything else is a
bug (exit status 1), whose traceback goes to a file named in the line.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import traceback

from .. import distributed
from ..distributed import RankError
from ..zoo.weights import WeightsUnavailableError
from . import (
    analysis,
    claim,
    fastgan,
    fid,
    preflight,
    search_placement,
    shape_bias,
    stylize,
    train,
    tune,
)

SUBCOMMANDS = [shape_bias, search_placement, analysis, claim, fastgan, fid, train, stylize, tune]
DISTRIBUTED = ("shape-bias", "search-placement")  # the commands that run under torchrun
INTERRUPTED = 130  # 128 + SIGINT, as shells report it


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="topk-plugin",
        description="Spatial Top-K activation sparsity for timm and torchvision models.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser


def _user_errors() -> tuple:
    """Exceptions that mean bad input or a bad environment, not a bug: their message is the whole story."""
    return ValueError, OSError, ImportError, RankError, WeightsUnavailableError


_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Warning)): (.*)$")


def message(error: BaseException) -> str:
    """The error's message; for an error re-raised from a DataLoader worker (whose message embeds the worker's
    traceback) the original message alone, so ``--workers 2`` fails with the same line as ``--workers 0``."""
    text = str(error).strip()
    if "Original Traceback (most recent call last)" not in text:
        return text
    lines = text.splitlines()
    kind = type(error)
    names = {kind.__qualname__, f"{kind.__module__}.{kind.__qualname__}"}
    for i in range(len(lines) - 1, -1, -1):
        head, sep, rest = lines[i].partition(": ")
        if sep and head in names:
            return "\n".join([rest, *lines[i + 1:]]).strip()
    for i in range(len(lines) - 1, -1, -1):  # re-raised as another type (e.g. RuntimeError)
        match = _EXCEPTION_LINE.match(lines[i])
        if match:
            return "\n".join([match[2], *lines[i + 1:]]).strip()
    return lines[-1]


def _interrupted(args, error: KeyboardInterrupt) -> str:
    detail = str(error).strip()
    if detail:
        return f"interrupted: {detail}"
    if hasattr(args, "resume"):
        return "interrupted; rerun the same command with --resume to continue from what was saved"
    return "interrupted"


def _internal_error(command: str, error: Exception) -> str:
    """One line for a bug; the traceback goes to a file (a long run's traceback is worth keeping)."""
    first = (str(error).strip().splitlines() or [""])[0]
    try:
        fd, path = tempfile.mkstemp(prefix=f"topk-plugin-{command}-", suffix=".traceback.txt")
        with os.fdopen(fd, "w") as f:
            f.write("".join(traceback.format_exception(type(error), error, error.__traceback__)))
        where = f"; traceback in {path}"
    except OSError:
        where = ""
    return f"internal error ({type(error).__name__}: {first}){where}; please report it"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    env = None

    def fail(text: str, status: int) -> int:
        print(f"topk-plugin {args.command}: {text}", file=sys.stderr)
        return status

    try:
        preflight.check_options(args)
        # under torchrun (WORLD_SIZE > 1): join the group; evaluators shard, rank 0 writes
        env = distributed.setup(getattr(args, "device", None)) if args.command in DISTRIBUTED else None
        return int(args.run(args) or 0)
    except KeyboardInterrupt as error:
        return fail(_interrupted(args, error), INTERRUPTED)
    except _user_errors() as error:  # bad input: one clear line
        return fail(f"error: {message(error)}", 2)
    except Exception as error:  # a bug: one line here, the traceback in a file
        if os.environ.get("TOPK_PLUGIN_TRACEBACK"):
            raise
        return fail(_internal_error(args.command, error), 1)
    finally:
        if env is not None:
            distributed.teardown(env)
