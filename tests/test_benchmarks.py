"""The benchmark scripts are not run by the tests (they take minutes to hours), but what they import from
the library must exist: a module moved or renamed under them fails here, not in the next measurement."""
import ast
import importlib
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


def _library_imports(path: Path) -> list[tuple[str, list[str], int]]:
    """``(module, names, line)`` of every ``topk_plugin`` import in ``path``, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("topk_plugin"):
            found.append((node.module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("topk_plugin")]
    return found


def test_there_are_benchmarks():
    assert len(BENCHMARKS) >= 5


@pytest.mark.parametrize("path", BENCHMARKS, ids=[p.name for p in BENCHMARKS])
def test_what_a_benchmark_imports_from_the_library_exists(path):
    missing = []
    for module, names, line in _library_imports(path):
        try:
            imported = importlib.import_module(module)
        except ModuleNotFoundError as error:
            missing.append(f"{path.name}:{line}: {error}")
            continue
        for name in names:
            if not hasattr(imported, name):
                try:  # a submodule imported by name
                    importlib.import_module(f"{module}.{name}")
                except ModuleNotFoundError:
                    missing.append(f"{path.name}:{line}: {module} has no {name}")
    assert not missing, "\n".join(missing)
