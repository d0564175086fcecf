"""`.ci/run` must run the README's install and test commands, verbatim."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _command_after(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split(f"## {heading}", 1)[1]
    return re.search(r"```bash\n(.+?)\n```", section, re.S).group(1).strip()


def test_ci_runs_the_readme_commands():
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    for heading in ("Install", "Test"):
        assert _command_after(heading) in ci_lines, heading


def test_the_package_map_matches_the_tree():
    """README's "How it works" names every package folder, and every folder it names exists."""
    text = (ROOT / "README.md").read_text().split("## How it works", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"^\| `([\w/]+)/` \|", text, re.M))
    packages = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "topk_plugin").rglob("__init__.py")}
    packages |= {str(p.relative_to(ROOT)) for p in (ROOT / "topk_plugin").rglob("csrc")}
    assert packages <= named, sorted(packages - named)
    assert all((ROOT / folder).is_dir() for folder in named), sorted(f for f in named if not (ROOT / f).is_dir())
