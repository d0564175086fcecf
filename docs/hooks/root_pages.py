"""MkDocs hook: the records kept at the repository's root, as site pages generated at build time
(never stale copies): BENCHMARKS.md (every measurement, by topic) as ``benchmarks.md`` and
COMPAT.md (the sweep over every timm architecture) as ``compat.md``.

Paths in them are relative to the repository root (``docs/figures/x.png``); on the site
they are relative to ``docs/``, so that prefix is dropped.
"""
from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

ROOT_PAGES = {"BENCHMARKS.md": "benchmarks.md", "COMPAT.md": "compat.md"}


def on_files(files, config):
    root = Path(config["config_file_path"]).parent
    for source, page in ROOT_PAGES.items():
        text = (root / source).read_text(encoding="utf-8").replace("](docs/", "](")
        files.append(File.generated(config, page, content=text))
    return files
