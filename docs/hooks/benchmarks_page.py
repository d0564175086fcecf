"""MkDocs hook: BENCHMARKS.md (the record of measurements, at the repository's root) as the site's
``benchmarks.md`` page, generated at build time so it is never a stale copy.

Paths in it are relative to the repository root (``docs/figures/x.png``); on the site
they are relative to ``docs/``, so that prefix is dropped.
"""
from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File


def on_files(files, config):
    root = Path(config["config_file_path"]).parent
    text = (root / "BENCHMARKS.md").read_text(encoding="utf-8").replace("](docs/", "](")
    files.append(File.generated(config, "benchmarks.md", content=text))
    return files
