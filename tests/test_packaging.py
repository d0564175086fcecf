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


def test_the_wheel_ships_the_shape_only_data(wheel_names):
    """edge and silhouette (160 PNGs each), their human trials (10 CSVs each), the licence and the attribution."""
    names = wheel_names
    data = "topk_plugin/shape_bias/data/"
    shipped = {p.relative_to(ROOT / "topk_plugin/shape_bias/data").as_posix()
               for p in (ROOT / "topk_plugin/shape_bias/data").rglob("*") if p.is_file()}
    assert {n.removeprefix(data) for n in names if n.startswith(data)} == shipped
    for dataset in ("edge", "silhouette"):
        assert sum(n.startswith(f"{data}{dataset}/") and n.endswith(".png") for n in names) == 160
        assert sum(n.startswith(f"{data}humans/{dataset}/") and n.endswith(".csv") for n in names) == 10
    assert {f"{data}LICENSE-CC-BY-4.0.txt", f"{data}ATTRIBUTION.md", f"{data}imagenet_16class.json"} <= names
