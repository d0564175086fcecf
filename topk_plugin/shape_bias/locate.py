"""Where a dataset's stimuli are: an explicit folder, the environment, the cache, the package, or a download.

For each dataset of :mod:`.datasets`, in this order: the folder given
(``--data``), ``$TOPK_PLUGIN_<NAME>`` (``TOPK_PLUGIN_CUE_CONFLICT``,
``TOPK_PLUGIN_EDGE``, ``TOPK_PLUGIN_SKETCH``, ...), the cache
(``<cache>/<name>``), then the copy shipped in the package (edge, silhouette)
or model-vs-human's release archive, downloaded into the cache. A download is
checked before it lands in the cache (the archive's sha256 when pinned, and
always the unpacked set: every category with its number of images), and its
sha256 is recorded beside it (``<cache>/<name>.source.json``).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from .._io import atomic_write_json
from .._paths import cache_dir
from .dataset import CueConflictError, scan_cue_conflict
from .datasets import DatasetSpec, dataset_spec
from .embedded import embedded_dataset
from .shape_only import scan_shape_only
from .stimuli import StimulusError

__all__ = ["ENV_VAR", "RELEASE_URL", "cache_dir", "find_dataset", "find_cue_conflict", "download_dataset",
           "download_cue_conflict", "scan", "found_without_download"]

ENV_VAR = dataset_spec("cue-conflict").env_var
# model-vs-human release v0.1 serves each dataset as one archive (SPEC section 3).
RELEASE_URL = dataset_spec("cue-conflict").url


def _error(spec: DatasetSpec) -> type[StimulusError]:
    return CueConflictError if spec.name == "cue-conflict" else StimulusError


def scan(root: str | os.PathLike, name: str) -> list:
    """The checked items of the ``name`` set at ``root`` (``scan_cue_conflict`` or ``scan_shape_only``)."""
    spec = dataset_spec(name)
    return scan_shape_only(root, spec) if spec.shape_only else scan_cue_conflict(root)


def find_dataset(name: str, data: str | os.PathLike | None = None, *, download: bool = True,
                 url: str | None = None) -> Path:
    """The stimuli folder of dataset ``name`` (see the module doc for the order)."""
    spec = dataset_spec(name)
    if data is not None:
        return Path(data)
    if os.environ.get(spec.env_var):
        return Path(os.environ[spec.env_var])
    cached = cache_dir() / spec.name
    if cached.is_dir():
        return cached
    if spec.embedded:
        return embedded_dataset(spec.name)
    if not download:
        raise _error(spec)(_where_to_put(spec, cached, "downloads are disabled"))
    return download_dataset(spec.name, cached.parent, url=url)


def found_without_download(name: str) -> Path | None:
    """Where ``name`` is when no download is needed (environment, cache, package), else None."""
    try:
        return find_dataset(name, download=False)
    except StimulusError:
        return None


def find_cue_conflict(data: str | os.PathLike | None = None, *, download: bool = True, url: str = RELEASE_URL) -> Path:
    """The cue-conflict folder: ``data``, else ``$TOPK_PLUGIN_CUE_CONFLICT``, else the
    cache (``<cache>/cue-conflict``), else downloaded into the cache."""
    return find_dataset("cue-conflict", data, download=download, url=url)


def _where_to_put(spec: DatasetSpec, target: Path, reason: str) -> str:
    layout = (f"{spec.name}/dnn/session-1/ with {spec.size} PNGs named NNNN_{spec.tag}_dnn_0_<category>_00_<file>"
              if spec.sessions else f"16 category folders of 224x224 PNGs, {spec.size} in all")
    return (
        f"{spec.name} stimuli not found ({reason}). Put the folder ({layout}; model-vs-human's release archive "
        f"{spec.url} unpacks to it, and a model-vs-human checkout keeps it in datasets/{spec.name}) at {target}, "
        f"or pass --data DIR, or set {spec.env_var}=DIR."
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def download_dataset(name: str, directory: Path, *, url: str | None = None, sha256: str | None = None) -> Path:
    """Download and unpack ``name``'s archive into ``directory/<name>``, atomically.

    ``sha256`` (default: the pinned one, if any) is checked before unpacking;
    the unpacked set is checked (:func:`scan`) before it moves into place.
    """
    spec = dataset_spec(name)
    url = url or spec.url
    if url is None:
        raise ValueError(f"{name} ships inside the package; there is nothing to download")
    sha256 = sha256 or spec.sha256
    error = _error(spec)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    with tempfile.TemporaryDirectory(dir=directory, prefix=".download-") as tmp:
        archive = Path(tmp) / f"{name}.tar.gz"
        try:
            with urllib.request.urlopen(url, timeout=30) as response, archive.open("wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=name) as bar:
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                        bar.update(len(chunk))
        except (urllib.error.URLError, OSError) as err:
            raise error(_where_to_put(spec, target, f"download from {url} failed: {err}")) from None
        got = _sha256(archive)
        if sha256 is not None and got != sha256:
            raise error(f"the archive from {url} has sha256 {got}, expected {sha256}: the download is damaged or "
                        f"not the release's; nothing was cached. {_where_to_put(spec, target, 'checksum mismatch')}")
        unpacked = Path(tmp) / "unpacked"
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(unpacked, filter="data")
        except (tarfile.TarError, OSError) as err:
            raise error(f"the archive from {url} cannot be unpacked ({err}); nothing was cached") from None
        found = [p for p in [unpacked / name, *unpacked.glob(f"*/{name}")] if p.is_dir()]
        if not found:
            raise error(f"the archive from {url} holds no {name}/ folder")
        scan(found[0], name)  # a broken archive must not land in the cache
        shutil.move(str(found[0]), target)
    source = {"url": url, "sha256": got, "sha256_pinned": sha256 is not None}
    atomic_write_json(directory / f"{name}.source.json", source)
    return target


def download_cue_conflict(directory: Path, *, url: str = RELEASE_URL) -> Path:
    """Download and unpack the cue-conflict archive into ``directory/cue-conflict``, atomically."""
    return download_dataset("cue-conflict", directory, url=url)
