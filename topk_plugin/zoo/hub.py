"""Asking the Hugging Face Hub once whether it answers, so an offline machine fails in seconds.

Why: timm fetches pretrained weights through ``huggingface_hub``, which retries
every unreachable request with back-off (1+2+4+8+8 s) and tries two file
names: about 50 s before it says the network is down. One short request
tells the same. When the hub answers nothing changes; when it does not, the
weights are taken from the local cache only (huggingface_hub's offline mode),
so cached weights still load at once and missing ones fail at once.
"""
from __future__ import annotations

import contextlib
import functools

from huggingface_hub import constants
from huggingface_hub.utils import get_session

__all__ = ["hub_endpoint", "hub_reachable", "offline_unless_reachable"]

PROBE_TIMEOUT = 5.0  # seconds: a refused connection or a failed DNS lookup answers at once


def hub_endpoint() -> str:
    """The hub's address (``$HF_ENDPOINT`` or huggingface.co)."""
    return constants.ENDPOINT


@functools.cache
def hub_reachable(endpoint: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether ``endpoint`` answers one HEAD request (any HTTP status counts), asked once per process.

    Goes through huggingface_hub's own session, so its proxy settings and
    offline mode (``HF_HUB_OFFLINE=1``: not reachable) apply.
    """
    try:
        get_session().head(endpoint, timeout=timeout)
    except Exception:  # noqa: BLE001 - connection, DNS, proxy and offline-mode errors all mean "no"
        return False
    return True


@contextlib.contextmanager
def offline_unless_reachable():
    """huggingface_hub's offline mode (local cache only, no retries) inside the block, unless the hub answers.

    Yields whether the hub answered.
    """
    try:
        from huggingface_hub import constants
    except ImportError:  # no hub client: nothing to retry
        yield True
        return
    if hub_reachable(constants.ENDPOINT):
        yield True
        return
    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True  # read at call time by huggingface_hub's downloads
    try:
        yield False
    finally:
        constants.HF_HUB_OFFLINE = before
