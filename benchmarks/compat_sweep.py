"""Compatibility sweep: the default Top-K rule on every timm architecture.

For each timm architecture (random init, no download): build it, check that
``forward_features`` gives a 4-D map, check that the dense model runs forward
and backward at the sweep size, apply the family's default placement (what
``topk_plugin.create_model("<arch>_topk10")`` does) and run forward and
backward again. A failure only counts against us when the dense model works
and the sparsified one does not.

    python benchmarks/compat_sweep.py --out COMPAT.md          # all ~1400 archs
    python benchmarks/compat_sweep.py --filter 'resnet*' --out /tmp/c.md

Not a CI test: it takes tens of minutes on 2 cores. Each model runs in a
worker process with a time limit; models above ``--max-params`` are skipped
without being built (their size is measured on the meta device).
"""
from __future__ import annotations

import argparse
import fnmatch
import multiprocessing as mp
import queue
import shlex
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass

STATUSES = {
    "ok": "dense and Top-K forward + backward work; Top-K fired",
    "fail": "dense works, Top-K variant fails (ours)",
    "not-4d": "forward_features is not a 4-D map (excluded from the sweep)",
    "dense-fails": "the dense model itself fails at the sweep size (not ours)",
    "skipped": "not run (too large for a CPU sweep, or cannot be built)",
    "timeout": "over the per-model time limit",
}


@dataclass
class Result:
    model: str
    status: str
    reason: str = ""
    seconds: float = 0.0


def _short(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".replace("\n", " ").replace("|", "/")
    return text[:160]


def _input_size(model, size: int):
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    native = tuple(cfg.get("input_size", (3, 224, 224)))
    if cfg.get("fixed_input_size", False):
        return native
    minimum = cfg.get("min_input_size")
    side = max(size, *(minimum[1:] if minimum else (0,)))
    return (native[0], side, side)


def _candidates(name: str, size: int):
    """(model, input shape) to try: small first, then the native size if small needs img_size."""
    import timm

    model = timm.create_model(name, pretrained=False)
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    native = _input_size(model, size)
    if cfg.get("fixed_input_size", False):
        try:  # many fixed-size models take img_size; otherwise run at the native size
            yield timm.create_model(name, pretrained=False, img_size=size), (native[0], size, size)
        except Exception:
            pass
    yield model, native


def _meta_features_ndim(name: str, size: int, max_params: float):
    """(parameter count, forward_features ndim) from a meta-device build; None where unknown."""
    import timm
    import torch

    try:
        with torch.device("meta"):
            meta = timm.create_model(name, pretrained=False)
    except Exception:
        return None, None
    params = sum(p.numel() for p in meta.parameters())
    if params > max_params:
        return params, None
    try:
        cfg = getattr(meta, "pretrained_cfg", {}) or {}
        shape = tuple(cfg.get("input_size", (3, 224, 224))) if cfg.get("fixed_input_size") else _input_size(meta, size)
        with torch.no_grad():
            out = meta.forward_features(torch.empty(2, *shape, device="meta"))
        return params, out.ndim if isinstance(out, torch.Tensor) else -1
    except Exception:
        return params, None


def _forward_backward(model, x):
    import torch

    model.zero_grad(set_to_none=True)
    out = model(x)
    out = out[0] if isinstance(out, (tuple, list)) else out
    out.float().sum().backward()
    if not torch.isfinite(out).all():
        raise FloatingPointError("non-finite output")
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return out, grads


def check_model(name: str, size: int, max_params: float) -> Result:
    """Run one architecture; never raises."""
    import torch

    from topk_plugin.surgery import sparsified_layers
    from topk_plugin.zoo.apply import apply_placement
    from topk_plugin.zoo.names import VariantName
    from topk_plugin.zoo.timm_registry import timm_placement

    start = time.perf_counter()
    done = lambda status, reason="": Result(name, status, reason, round(time.perf_counter() - start, 1))
    params, ndim = _meta_features_ndim(name, size, max_params)
    if params is not None and params > max_params:
        return done("skipped", f"{params / 1e6:.0f}M parameters > --max-params {max_params / 1e6:.0f}M")
    if ndim is not None and ndim != 4:
        return done("not-4d", f"forward_features gives a {ndim}-D tensor" if ndim > 0 else "forward_features gives no tensor")
    torch.manual_seed(0)
    failure = None
    try:
        for model, shape in _candidates(name, size):
            model.eval()
            x = torch.randn(2, *shape)
            try:
                with torch.no_grad():
                    features = model.forward_features(x)
            except Exception as error:
                failure = "forward_features: " + _short(error)
                continue
            if not isinstance(features, torch.Tensor) or features.ndim != 4:
                what = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
                return done("not-4d", f"forward_features gives {what}")
            try:
                dense_out, dense_grads = _forward_backward(model, x)
                failure = None
                break
            except Exception as error:
                failure = "forward/backward: " + _short(error)
    except Exception as error:
        return done("skipped", "cannot build: " + _short(error))
    if failure is not None:
        return done("dense-fails", failure)
    try:
        placement = timm_placement(name, model)
        apply_placement(model, VariantName(name, 10), placement, "timm")
        fired = {}
        for layer, topk in sparsified_layers(model).items():
            topk.register_forward_hook(
                lambda m, i, o, layer=layer: fired.__setitem__(layer, (o != 0).float().mean().item())
            )
        out, grads = _forward_backward(model, x)
    except Exception as error:
        return done("fail", _short(error) + " @ " + traceback.extract_tb(error.__traceback__)[-1].name)
    if tuple(out.shape) != tuple(dense_out.shape):
        return done("fail", f"output shape {tuple(out.shape)} != dense {tuple(dense_out.shape)}")
    if not fired:
        return done("fail", f"Top-K at {placement.layers} never ran")
    if not grads:
        return done("fail", "no parameter received a gradient")
    density = ", ".join(f"{layer} {value:.2f}" for layer, value in fired.items())
    return done("ok", f"{placement.rule}, channel_dim={placement.channel_dim}: nonzero fraction {density}")


def _worker(inbox, outbox, size, max_params):
    import torch

    torch.set_num_threads(1)
    import warnings

    warnings.filterwarnings("ignore")
    while True:
        name = inbox.get()
        if name is None:
            return
        outbox.put(check_model(name, size, max_params))


def run(names: list[str], workers: int, timeout: float, size: int, max_params: float, progress=True, on_result=None) -> list[Result]:
    ctx = mp.get_context("spawn")
    outbox = ctx.Queue()
    pending = list(reversed(names))
    results: dict[str, Result] = {}
    slots = []  # [process, inbox, current name, started]

    def start_worker():
        inbox = ctx.Queue()
        proc = ctx.Process(target=_worker, args=(inbox, outbox, size, max_params), daemon=True)
        proc.start()
        return [proc, inbox, None, 0.0]

    def feed(slot):
        if pending:
            slot[2], slot[3] = pending.pop(), time.monotonic()
            slot[1].put(slot[2])
        else:
            slot[2] = None

    for _ in range(min(workers, len(names))):
        slot = start_worker()
        slots.append(slot)
        feed(slot)
    while any(slot[2] for slot in slots):
        try:
            result = outbox.get(timeout=1.0)
        except queue.Empty:
            result = None
        if result is not None:
            results[result.model] = result
            for slot in slots:
                if slot[2] == result.model:
                    feed(slot)
            if progress:
                print(f"[{len(results)}/{len(names)}] {result.model}: {result.status} {result.reason[:100]}", flush=True)
            if on_result is not None:
                on_result(results)
        now = time.monotonic()
        for i, slot in enumerate(slots):
            name = slot[2]
            if name and (now - slot[3] > timeout or not slot[0].is_alive()):
                why = f"over {timeout:.0f} s" if slot[0].is_alive() else f"worker died (exit code {slot[0].exitcode})"
                slot[0].kill()
                slot[0].join()
                results[name] = Result(name, "timeout" if "over" in why else "skipped", why, round(now - slot[3], 1))
                if progress:
                    print(f"[{len(results)}/{len(names)}] {name}: {why}", flush=True)
                slots[i] = start_worker()
                feed(slots[i])
    for slot in slots:
        slot[1].put(None)
        slot[0].join(timeout=5)
    return [results[name] for name in names]


def markdown(results: list[Result], command: str, elapsed: float, total: int | None = None) -> str:
    import platform

    import timm
    import torch

    counts = Counter(r.status for r in results)
    swept = sum(counts[s] for s in ("ok", "fail", "timeout"))
    lines = [
        "# Compatibility sweep: default Top-K rule on every timm architecture",
        "",
        f"Made by `{command}` in {elapsed / 60:.0f} min on {platform.machine()} CPU "
        f"(timm {timm.__version__}, torch {torch.__version__}, Python {platform.python_version()}).",
        "Random init, no downloads, batch 2 at a small input, eval mode; Top-K 10% at the",
        "placement `topk_plugin.create_model('<arch>_topk10')` picks (see docs/MODELS.md, Rules).",
        "",
        "## Totals",
        "",
        *([f"**Partial: {len(results)} of {total} architectures so far (the sweep is still running or was stopped).**", ""]
          if total and len(results) < total else []),
        f"- architectures listed by timm: {len(results)}",
        f"- with 4-D forward features and run: {swept} "
        f"(ok {counts['ok']}, fail {counts['fail']}, timeout {counts['timeout']})",
        "",
        "| status | count | meaning |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {status} | {counts[status]} | {meaning} |" for status, meaning in STATUSES.items()]
    lines += ["", "## Every architecture", "", "| model | status | reason |", "| --- | --- | --- |"]
    lines += [f"| {r.model} | {r.status} | {r.reason} |" for r in results]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filter", default="*", help="fnmatch pattern over timm.list_models() (default: all)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N matches")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds per model")
    parser.add_argument("--size", type=int, default=64, help="input side for models that allow any size")
    parser.add_argument("--max-params", type=float, default=150e6, help="skip larger models (default 150e6)")
    parser.add_argument("--out", default="COMPAT.md")
    args = parser.parse_args(argv)

    import timm

    names = [n for n in timm.list_models() if fnmatch.fnmatchcase(n, args.filter)]
    names = names[: args.limit] if args.limit else names
    start = time.perf_counter()
    command = "python " + " ".join(shlex.quote(a) for a in ["benchmarks/compat_sweep.py", *sys.argv[1:]])

    def checkpoint(done: dict):
        if len(done) % 25 == 0:
            partial = [done[n] for n in names if n in done]
            with open(args.out, "w", encoding="utf-8") as f:
                f.write(markdown(partial, command, time.perf_counter() - start, total=len(names)))

    results = run(names, args.workers, args.timeout, args.size, args.max_params, on_result=checkpoint)
    text = markdown(results, command, time.perf_counter() - start)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    counts = Counter(r.status for r in results)
    print(", ".join(f"{s} {counts[s]}" for s in STATUSES), "->", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
