"""``topk-plugin tune``: compile the CPU kernel and choose its fastest path for this machine, ahead of time."""
from __future__ import annotations

import argparse
import json

import torch

from ..kernel import kernel_status, tune
from .argtypes import positive_int

HELP = "compile the CPU selection kernel and time its paths now, for this machine and thread count(s)"


def add_parser(sub) -> None:
    p = sub.add_parser("tune", help=HELP, description=HELP + (
        ". Otherwise the first CPU forward of a process on a new machine does it for the row classes it meets "
        "(a few seconds, capped by $TOPK_PLUGIN_TUNE_SECONDS per class). The choice depends on the thread count: "
        "before a torchrun job (1 thread per process) pass --threads 1."))
    p.add_argument("--threads", type=positive_int, nargs="+", metavar="N",
                   help="thread counts to tune for (default: this process' torch.get_num_threads())")
    p.add_argument("--json", action="store_true", help="print one JSON object per thread count")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:

    default = torch.get_num_threads()
    try:
        for threads in args.threads or [default]:
            torch.set_num_threads(threads)  # the decisions are per thread count
            decision = tune()
            if args.json:
                print(json.dumps({"threads": threads, "choice": decision["choice"], "path": decision["path"],
                                  "seconds": sum(e.get("seconds", 0) for e in decision["classes"].values())}))
            else:
                print(f"threads: {threads}\n{kernel_status()}\n")
    finally:
        torch.set_num_threads(default)
    return 0
