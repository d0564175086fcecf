"""The pages a user copies from first cannot rot: their Python blocks run, offline, as written;
and no development path (this repository's data folder beside the checkout) reaches user-facing text."""
import importlib.util
import re
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEV_PATH = "../shared"  # the development data folder: users do not have it


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(line number, code)`` of every fenced ``python`` block, in order."""
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1))
            for m in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M)]


@pytest.fixture
def offline_in_tmp(tmp_path, monkeypatch):
    """Run in an empty folder with no network: a block that downloads fails instead of passing on a
    machine that happens to be online."""
    monkeypatch.chdir(tmp_path)

    def no_network(*args, **kwargs):
        raise OSError("no network in the docs tests: a code block tried to download")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    return tmp_path


def run_blocks(path: Path, blocks: list[tuple[int, str]]) -> dict:
    namespace = {"__name__": "__docs__"}
    for line, code in blocks:  # one namespace, in order, as a reader runs them
        # compiled with the page's line numbers, so a failure points at the page
        exec(compile("\n" * (line - 1) + code, str(path), "exec"), namespace)
    return namespace


def test_python_blocks_reference():
    text = "intro\n```python\na = 1\n```\nmid\n```bash\nls\n```\n```python\nb = 2\nc = 3\n```\n"
    assert python_blocks(text) == [(3, "a = 1\n"), (10, "b = 2\nc = 3\n")]


def test_getting_started_blocks_run(offline_in_tmp):
    path = ROOT / "docs" / "index.md"
    blocks = python_blocks(path.read_text())
    assert len(blocks) >= 4, "the getting-started page lost its code blocks"
    namespace = run_blocks(path, blocks)
    assert namespace["logits"].shape == (1, 1000)
    assert namespace["lite0"].topk_variant["layers"] == ["blocks.2"]
    assert namespace["path"].is_file()


def test_readme_quickstart_runs(offline_in_tmp):
    path = ROOT / "README.md"
    section = path.read_text().split("## Quickstart", 1)[1]
    first = path.read_text().index("## Quickstart")
    blocks = [(line + path.read_text().count("\n", 0, first), code) for line, code in python_blocks(section)][:1]
    assert blocks, "README.md has no Python block under Quickstart"
    namespace = run_blocks(path, blocks)
    assert namespace["logits"].shape == (1, 1000)
    assert (offline_in_tmp / "placement.json").is_file()


def _cli_pages() -> dict[str, str]:
    """The command-line pages as the docs build generates them (the parsers' --help text)."""
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
    spec = importlib.util.spec_from_file_location("cli_pages", ROOT / "docs" / "hooks" / "cli_pages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.pages()


def dev_path_hits(name: str, text: str) -> list[str]:
    return [f"{name}:{number}: {line.strip()}" for number, line in enumerate(text.splitlines(), 1) if DEV_PATH in line]


def test_dev_path_hits_reference():
    assert dev_path_hits("x.md", "ok\n--data ../shared/data\n") == ["x.md:2: --data ../shared/data"]


def test_no_development_paths_in_user_facing_text():
    """README.md, every page under docs/ and every generated command-line page: where one names the
    development data folder, the message says which file and line."""
    hits = dev_path_hits("README.md", (ROOT / "README.md").read_text())
    for page in sorted((ROOT / "docs").rglob("*.md")):
        hits += dev_path_hits(str(page.relative_to(ROOT)), page.read_text())
    for name, text in _cli_pages().items():
        hits += dev_path_hits(f"{name} (generated from --help)", text)
    assert not hits, f"{DEV_PATH!r} in user-facing text (use --data DIR-style placeholders):\n" + "\n".join(hits)
