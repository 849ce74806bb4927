"""The house rules that a code change can break silently, checked from the imports: the
store raises no domain error (it stores; use cases decide), use cases import nothing from
the HTTP layer, and no test module imports another (shared helpers live in
tests/helpers/ and fixtures in conftest.py)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parent.parent
SRC = ROOT / "src" / "kefal_lite"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def _offenders(files: list[Path], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    found = {}
    for path in files:
        bad = sorted(m for m in _imports(path) if m.startswith(forbidden))
        if bad:
            found[path.name] = bad
    return found


def test_the_store_raises_no_domain_error() -> None:
    files = sorted((SRC / "store").glob("*.py"))
    assert len(files) > 10
    assert _offenders(files, ("kefal_lite.errors",)) == {}


def test_use_cases_do_not_reach_into_the_http_layer() -> None:
    files = sorted((SRC / "usecases").glob("*.py"))
    assert len(files) > 5
    assert _offenders(files, ("kefal_lite.api", "kefal_lite.app", "litestar")) == {}


def test_no_test_module_imports_another() -> None:
    tests = ROOT / "tests"
    files = sorted(tests.glob("*.py")) + sorted((tests / "helpers").glob("*.py"))
    assert len(files) > 40
    assert _offenders(files, ("tests.test_",)) == {}


def test_the_checks_can_fail(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from tests.test_engine import CASES\nimport kefal_lite.errors\n")
    assert _offenders([module], ("tests.test_",)) == {
        "m.py": ["tests.test_engine", "tests.test_engine.CASES"]
    }
    assert _offenders([module], ("kefal_lite.errors",)) == {"m.py": ["kefal_lite.errors"]}
