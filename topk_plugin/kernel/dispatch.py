"""The selection as ``torch.library`` custom ops, and the backend switch that picks its path.

Two opaque ops (so ``torch.compile`` / ``torch.export`` see one node each and
never trace into ctypes):

* ``topk_plugin::topk_mask(x, k, channel_dim, exact, by_abs, invert) -> bool mask``
* ``topk_plugin::topk_keep(x, k, channel_dim, exact, by_abs, invert) -> x * mask``
  (the selected values, others ``+0.0``; the inference path, one pass, no mask)

``k`` is the already resolved count (``1 <= k <= positions``). Both return a
tensor laid out like ``torch.empty_like(x)`` (the fake implementations say the
same). They are not differentiable: ``functional.spatial_topk`` calls
``topk_keep`` only when no gradient is needed and otherwise applies
``torch.where`` to the mask, so autograd saves nothing but the bool mask.

On CPU the ops run the path that :mod:`.choice` measured fastest on this machine for
the tensor's row class (the native vector build, the portable plain-C build, or the
pure-PyTorch selection of :mod:`.torch_path`: all give the same bits); on any other device,
or when the kernel cannot be built, the pure-PyTorch path.

Backend switch: ``TOPK_PLUGIN_BACKEND`` read at import, or :func:`set_backend` /
:func:`backend` at run time:

* ``"auto"`` (default): the measured choice per row class for CPU tensors;
* ``"torch"``: always the pure-PyTorch path (for debugging and comparisons);
* ``"kernel"``: always the native build, raise if it is unavailable (for tests);
* ``"portable"``: always the ``-DTOPK_PORTABLE`` build, raise if it is unavailable.
"""
from __future__ import annotations

import contextlib
import contextvars
import os

import torch

from . import build, choice, native, torch_path
from .layout import positions

__all__ = ["BACKENDS", "backend", "get_backend", "set_backend", "kernel_available", "kernel_library", "use_kernel"]

BACKENDS = ("auto", "torch", "kernel", "portable")
_FORCED = {"kernel": "native", "portable": "portable"}  # backend -> the build it forces
# kernel_library(): a build (ctypes library) or "torch" pinned for this thread / context
_pinned: contextvars.ContextVar = contextvars.ContextVar("topk_plugin_pinned", default=None)

ENV_VAR = "TOPK_PLUGIN_BACKEND"
_backend = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
# A bad value must not break `import topk_plugin` or `--help`: it is reported when a selection runs.
_env_error = (None if _backend in BACKENDS else
              f"{ENV_VAR}={_backend!r} is not one of {', '.join(BACKENDS)}: unset it or set one of those")

def get_backend() -> str:
    """The backend in force; raises if ``TOPK_PLUGIN_BACKEND`` holds an unknown value."""
    if _env_error is not None:
        raise ValueError(_env_error)
    return _backend


def set_backend(name: str) -> None:
    """Select ``"auto"``, ``"torch"``, ``"kernel"`` or ``"portable"`` (see the module doc)."""
    global _backend, _env_error
    if name not in BACKENDS:
        raise ValueError(f"backend {name!r} is not one of {', '.join(BACKENDS)}")
    _backend, _env_error = name, None


@contextlib.contextmanager
def backend(name: str):
    """Context manager form of :func:`set_backend`."""
    global _backend, _env_error
    previous = _backend, _env_error
    set_backend(name)
    try:
        yield
    finally:
        _backend, _env_error = previous


def kernel_available() -> bool:
    return build.library() is not None


def use_kernel(x: torch.Tensor, channel_dim: int = 1) -> bool:
    """Whether ``spatial_topk`` should go through the custom ops for ``x``: not when the
    PyTorch path will run anyway (then ``functional`` runs it directly, with autograd)."""
    backend_name = get_backend()
    if x.device.type != "cpu":
        return False
    if torch.compiler.is_compiling():
        # traced: the custom op decides when it runs (kernel or PyTorch path, same bits), so
        # tracing never builds, locks or measures anything
        return backend_name != "torch"
    return _library_for(x, channel_dim) is not None


def _forced_library():
    variant = _FORCED[_backend]
    lib = build.library(variant)
    if lib is None:
        raise RuntimeError(
            f"TOPK_PLUGIN_BACKEND={_backend} but the {variant} C kernel is unavailable: "
            f"{build.status(variant)} (use TOPK_PLUGIN_BACKEND=auto or torch)"
        )
    return lib


def _library_for(x: torch.Tensor, channel_dim: int):
    """The kernel build to run ``x`` on, or ``None`` for the pure-PyTorch path: the pinned
    one (:func:`kernel_library`), else the forced backend's, else the measured choice for
    ``x``'s row class (:mod:`.choice`)."""
    if x.device.type != "cpu":
        return None
    pinned = _pinned.get()
    if pinned is not None:
        return None if isinstance(pinned, str) else pinned
    if _backend == "torch":
        return None
    if _backend in _FORCED:
        return _forced_library()
    if all(b.lib is None for b in build.builds().values()):  # compiled in parallel on first use
        return None
    path = choice.choice(choice.row_class(positions(x, channel_dim), x.dtype))
    return None if path == "torch" else build.library(path)


@contextlib.contextmanager
def kernel_library(lib):
    """Run ``spatial_topk`` on one build of the kernel (a ctypes library from
    ``build``), or on the PyTorch path with ``"torch"``, whatever the backend or
    the measured choice. Per thread (a context variable), so it never switches other
    threads' paths; the tests and benchmarks use it to compare builds through the public op."""
    if not (lib == "torch" or hasattr(lib, "topk_rows_i32")):
        raise TypeError(f"kernel_library takes a kernel library or 'torch', got {lib!r}")
    token = _pinned.set(lib)
    try:
        yield
    finally:
        _pinned.reset(token)


def _torch_mask(x, k, channel_dim, exact, by_abs, invert):
    # a real op: k and the sizes are concrete here
    mask = torch_path.topk_mask(x, k, channel_dim, exact, by_abs, k >= positions(x, channel_dim))
    result = torch.empty_like(x, dtype=torch.bool)
    result.copy_(~mask if invert else mask)
    return result


@torch.library.custom_op("topk_plugin::topk_mask", mutates_args=())
def topk_mask_op(x: torch.Tensor, k: int, channel_dim: int, exact: bool, by_abs: bool, invert: bool) -> torch.Tensor:
    """Bool mask of the Top-``k`` entries per (sample, channel); layout of ``empty_like(x)``."""
    lib = _library_for(x, channel_dim)
    if lib is not None:
        return native.run(lib, x, k, channel_dim, exact, by_abs, invert, want_out=False)
    return _torch_mask(x, k, channel_dim, exact, by_abs, invert)


@topk_mask_op.register_fake
def _(x, k, channel_dim, exact, by_abs, invert):
    return torch.empty_like(x, dtype=torch.bool)


@torch.library.custom_op("topk_plugin::topk_keep", mutates_args=())
def topk_keep_op(x: torch.Tensor, k: int, channel_dim: int, exact: bool, by_abs: bool, invert: bool) -> torch.Tensor:
    """``x`` where the Top-``k`` mask holds, ``+0.0`` elsewhere (no autograd)."""
    lib = _library_for(x, channel_dim)
    if lib is not None:
        return native.run(lib, x, k, channel_dim, exact, by_abs, invert, want_out=True)
    mask = _torch_mask(x, k, channel_dim, exact, by_abs, invert)
    result = torch.empty_like(x)
    result.copy_(torch.where(mask, x, 0.0))
    return result


@topk_keep_op.register_fake
def _(x, k, channel_dim, exact, by_abs, invert):
    return torch.empty_like(x)
