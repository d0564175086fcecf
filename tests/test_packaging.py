"""Packaging: every package folder is installed, integrations map into topk_plugin."""
import tomllib
from pathlib import Path

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
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "topk_plugin").rglob("*.py")
        if "integrations" in "".join(line for line in p.read_text().splitlines() if line.lstrip().startswith(("import", "from")))
    ]
    assert not offenders
