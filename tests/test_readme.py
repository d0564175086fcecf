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
