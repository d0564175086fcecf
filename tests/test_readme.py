"""README.md is the front page: `.ci/run` runs its install and test commands verbatim, and its links resolve."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_README_LINES = 150  # a front page, not a research log: the research lives in docs/


def _bash_after(heading: str, path: Path = ROOT / "README.md") -> str:
    section = path.read_text().split(f"## {heading}", 1)[1]
    return re.search(r"```bash\n(.+?)\n```", section, re.S).group(1).strip()


def test_ci_runs_the_readme_commands():
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    for heading in ("Install", "Test"):
        assert _bash_after(heading) in ci_lines, heading


def test_the_development_page_gives_the_same_commands():
    """docs/development.md repeats the install and test commands: they must not drift from README's (and CI's)."""
    block = _bash_after("Install and test", ROOT / "docs" / "development.md").splitlines()
    assert block == [_bash_after("Install"), _bash_after("Test")]


def test_the_package_map_matches_the_tree():
    """The "How it works" page names every package folder, and every folder it names exists."""
    text = (ROOT / "docs" / "how-it-works.md").read_text()
    named = set(re.findall(r"^\| `([\w/]+)/` \|", text, re.M))
    packages = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "topk_plugin").rglob("__init__.py")}
    packages |= {str(p.relative_to(ROOT)) for p in (ROOT / "topk_plugin").rglob("csrc")}
    assert packages <= named, sorted(packages - named)
    assert all((ROOT / folder).is_dir() for folder in named), sorted(f for f in named if not (ROOT / f).is_dir())


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_github_anchor_reference():
    assert github_anchor("Shape beyond cue-conflict: edge and silhouette with the humans (issue 21)") == \
        "shape-beyond-cue-conflict-edge-and-silhouette-with-the-humans-issue-21"
    assert github_anchor("Does Top-K make networks recognise shape?") == "does-top-k-make-networks-recognise-shape"


def test_readme_links_resolve():
    """Every relative link of README.md names an existing file, and every #anchor a heading of it.

    The docs build checks the links of docs/ (mkdocs --strict); README.md is not part of the site,
    so this is its check."""
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", (ROOT / "README.md").read_text()):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        file = ROOT / path
        if not file.is_file():
            broken.append(f"{target}: no file {path}")
        elif anchor:
            headings = re.findall(r"^#+ (.+)$", file.read_text(), re.M)
            if anchor not in {github_anchor(h) for h in headings}:
                broken.append(f"{target}: {path} has no heading with anchor #{anchor}")
    assert not broken, "README.md links:\n" + "\n".join(broken)


def test_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move detail into docs/"
