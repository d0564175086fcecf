"""How a selection runs: the C kernel, the pure-PyTorch path, and the measured choice between them.

``topk_plugin.functional`` is the op's public API and calls into this package;
nothing here imports it. The pieces, one job each:

* :mod:`.layout`: an activation as rows of positions (the views every path reads);
* :mod:`.torch_path`: the pure-PyTorch selection (any device, the reference);
* :mod:`.build`: compiling and loading the C source in ``csrc/`` (cached per machine);
* :mod:`.native`: running a loaded build on a tensor;
* :mod:`.cpu`: which CPU this is (model, vector ISA, the flags that key the caches);
* :mod:`.choice`: which path is fastest here, per row class, measured and cached;
* :mod:`.dispatch`: the ``torch.library`` custom ops and the ``TOPK_PLUGIN_BACKEND`` switch;
* :mod:`.status`: ``kernel_status()`` and ``tune()``, in words and ahead of time.
"""
from .dispatch import BACKENDS, backend, get_backend, kernel_available, kernel_library, set_backend, use_kernel
from .status import kernel_status, tune

__all__ = ["BACKENDS", "backend", "get_backend", "set_backend", "kernel_available", "kernel_library", "use_kernel",
           "kernel_status", "tune"]
