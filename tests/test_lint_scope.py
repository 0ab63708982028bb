"""The tenancy lint: an unscoped query on a tenant model fails it; the project's own code passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = ROOT / "scripts" / "lint_scope.py"
FIXTURES = Path(__file__).parent / "fixtures" / "lint_scope"


def _run(*args: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(LINT), *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, check=False)


def test_a_deliberately_unscoped_query_fails_the_lint() -> None:
    result = _run(FIXTURES / "unscoped.py")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "unscoped.py:14: documents_of: query on tenant model Artifact" in result.stdout
    assert "1 unscoped tenant queries" in result.stdout


def test_queries_taking_a_scope_a_context_alias_or_a_tenant_row_pass() -> None:
    result = _run(FIXTURES / "scoped.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_the_project_code_passes_the_lint() -> None:
    result = _run()
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_stale_allowlist_entry_fails_the_lint() -> None:
    sys.path.insert(0, str(LINT.parent))
    try:
        import lint_scope
    finally:
        sys.path.remove(str(LINT.parent))
    findings, stale = lint_scope.lint([FIXTURES / "scoped.py"],
                                      allowlist={"tests.fixtures.lint_scope.scoped:gone": "x"})
    assert findings == []
    assert stale == ["tests.fixtures.lint_scope.scoped:gone"]
    findings, stale = lint_scope.lint([FIXTURES / "unscoped.py"],
                                      allowlist={"tests.fixtures.lint_scope.unscoped:documents_of": "reason"})
    assert findings == []
    assert stale == []
