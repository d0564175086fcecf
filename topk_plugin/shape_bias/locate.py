"""Where the cue-conflict stimuli are: an explicit folder, the environment, the cache, or a download."""
from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from .._paths import cache_dir
from .dataset import CueConflictError, scan_cue_conflict

__all__ = ["ENV_VAR", "RELEASE_URL", "cache_dir", "find_cue_conflict", "download_cue_conflict"]

ENV_VAR = "TOPK_PLUGIN_CUE_CONFLICT"
# model-vs-human release v0.1 serves the stimuli as one archive (SPEC section 3).
RELEASE_URL = "https://github.com/bethgelab/model-vs-human/releases/download/v0.1/cue-conflict.tar.gz"


def find_cue_conflict(data: str | os.PathLike | None = None, *, download: bool = True, url: str = RELEASE_URL) -> Path:
    """The stimuli folder: ``data``, else ``$TOPK_PLUGIN_CUE_CONFLICT``, else the
    cache (``<cache>/cue-conflict``), else downloaded into the cache."""
    if data is not None:
        return Path(data)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    cached = cache_dir() / "cue-conflict"
    if cached.is_dir():
        return cached
    if not download:
        raise CueConflictError(_where_to_put(cached, "downloads are disabled"))
    return download_cue_conflict(cached.parent, url=url)


def _where_to_put(target: Path, reason: str) -> str:
    return (
        f"cue-conflict stimuli not found ({reason}). Put the folder (16 category folders of "
        f"224x224 PNGs, e.g. from model-vs-human's release archive {RELEASE_URL}) at {target}, "
        f"or pass --data DIR, or set {ENV_VAR}=DIR."
    )


def download_cue_conflict(directory: Path, *, url: str = RELEASE_URL) -> Path:
    """Download and unpack the archive into ``directory/cue-conflict``, atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "cue-conflict"
    with tempfile.TemporaryDirectory(dir=directory, prefix=".download-") as tmp:
        archive = Path(tmp) / "cue-conflict.tar.gz"
        try:
            with urllib.request.urlopen(url, timeout=30) as response, archive.open("wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc="cue-conflict") as bar:
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                        bar.update(len(chunk))
        except (urllib.error.URLError, OSError) as err:
            raise CueConflictError(_where_to_put(target, f"download from {url} failed: {err}")) from None
        unpacked = Path(tmp) / "unpacked"
        with tarfile.open(archive) as tar:
            tar.extractall(unpacked, filter="data")
        found = [p for p in [unpacked / "cue-conflict", *unpacked.glob("*/cue-conflict")] if p.is_dir()]
        if not found:
            raise CueConflictError(f"the archive from {url} holds no cue-conflict/ folder")
        scan_cue_conflict(found[0])  # a broken archive must not land in the cache
        shutil.move(str(found[0]), target)
    return target
