"""Packaging: every package folder is installed, integrations map into topk_plugin."""
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "topk_plugin").rglob("__init__.py")
    } | {
        "topk_plugin.integrations" + "".join("." + part for part in p.parent.relative_to(ROOT / "integrations").parts)
        for p in (ROOT / "integrations").rglob("__init__.py")
    }
    assert found == listed
    assert config["package-dir"] == {"topk_plugin.integrations": "integrations"}


def test_core_never_imports_integrations():
    """Only CLI commands may reach an integration, and only lazily (inside a function)."""
    offenders = []
    for path in (ROOT / "topk_plugin").rglob("*.py"):
        lazy_ok = path.parent.name == "cli"
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.strip()
            if code.startswith(("import ", "from ")) and "integrations" in code:
                if not (lazy_ok and line[:1].isspace()):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}")
    assert not offenders
