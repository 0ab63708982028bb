#!/usr/bin/env python3
"""Find queries on tenant tables that no scope guards (the tenancy lint).

A tenant model is a mapped class with a `project_id` column (and `Project`).
A `select`, `update` or `delete` that names one — or a `session.get` / `session.query`
of one — must sit inside a function that takes a `ProjectScope` or a `ProjectContext`
(directly, through an `Annotated[ProjectContext, ...]` alias, or through a class that
carries one), or a tenant row: a row was loaded through a scope (or that load is itself
a finding), so queries anchored on it stay in its project. Otherwise it is a finding,
unless its module is declared trusted below or the function is on the allowlist with a
reason. An allowlist entry that no longer
matches a finding is itself reported, so the list only shrinks.

    python scripts/lint_scope.py            # the project's own code
    python scripts/lint_scope.py PATH...    # other files or folders (tenant models still from src/kap)

Exit status 1 when anything is reported.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
# OrgContext: org-wide reads (audit, telemetry) by an org owner or admin, resolved by
# `resolve_org_admin` from the same permissions table.
SCOPE_TYPES = {"ProjectScope", "ProjectContext", "OrgContext"}
QUERY_CALLS = {"select", "update", "delete", "select_from"}
LOOKUP_CALLS = {"get", "query"}

# Modules that are the tenancy machinery itself, or only ever run as trusted service work
# over every tenant (migrations, backups and restore, the schedule), so a per-project scope
# would be meaningless there.
TRUSTED_MODULES: dict[str, str] = {
    "kap.core.scope": "the resolver itself: it decides who reaches which project",
    "kap.core.mail": "the outbox updates the log rows of messages it queued itself, on the service engine",
    "kap.comms.scheduler": "the digest schedule walks every project on the service engine",
    "kap.stages.reminders": "sign-off reminders and expiry notices walk every project on the service engine",
    "kap.documents.jobs": "extraction jobs, named by an artifact id the request already scoped",
    "kap.raid.jobs": "the RAID extraction job, named by an artifact id the ingest already scoped",
    "kap.backups.writer": "nightly backups and retention walk every project on the service engine",
    "kap.backups.restore": "restore writes a whole archive back; the route scoped the target project",
    "kap.demo": "the CLI's demo seeder creates tenants, it reads none on anyone's behalf",
}
TRUSTED_PACKAGES: dict[str, str] = {
    "kap.migrations": "schema and data migrations run as the migrating role",
    "kap.sentinel": "reads other projects on purpose, to prove nothing comes back",
}

# module:function -> why the query is safe without a scope argument: each entry authorises
# by other means (a token, an org context, a trusted walk). The list only shrinks (a stale
# entry fails the lint).
ALLOWLIST: dict[str, str] = {
    "kap.core.deps:service_context": "looks the named project up to mint its service scope",
    "kap.admin.api:org_audit": "resolves its OrgContext (org owners/admins) first and filters by its org_id",
    "kap.admin.api:telemetry_events": "resolves its OrgContext (org owners/admins) first and filters by its org_id",
    "kap.comms.service:subscription_by_token": "the unsubscribe token is the credential; it names one row",
    "kap.comms.api:_describe": "names the project of a row an unsubscribe token already found",
    "kap.comms.webhooks:_log_row": "a signed Mailgun event names its message; the log row names the project",
    "kap.stages.external:_lookup": "the signed sign-off token is the credential; it names one request",
    "kap.stages.external:open_link": "the signed sign-off token is the credential; it names one request",
    "kap.stages.external:decide_by_token": "the signed sign-off token is the credential; it names one request",
    "kap.stages.external:link_document": "the signed sign-off token is the credential; only its stage's documents",
    "kap.stages.notify:notify_decided": "named by the request its caller just decided, through a scope or a token",
    "kap.stages.previews:text_excerpt": "excerpts a document its caller reached through a scope or a sign-off token",
    "kap.stages.signoff:_record_sent": "an after-commit mail callback named by a request id its request already scoped",
    "kap.stages.signoff:_record_recovered": "the recovery pass records a mail it sent for a dead process, by its ref",
    "kap.stages.signoff:_expire": "the scheduled expiry walks every project on the service engine",
    "kap.stages.signoff:expire_overdue": "the scheduled expiry walks every project on the service engine",
    "kap.ask.vectors:projects_pending": "the embedding job lists every project with work waiting",
}


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int
    where: str
    model: str

    def __str__(self) -> str:
        return (f"{self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path}:{self.line}: "
                f"{self.where}: query on tenant model {self.model} outside a function taking a scope")


def python_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)
        elif path.suffix == ".py":
            yield path


def module_name(path: Path) -> str:
    try:
        rel = path.resolve().relative_to(SRC)
    except ValueError:
        rel = path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else Path(path.name)
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _names(node: ast.AST | None) -> set[str]:
    """Every bare name an expression (an annotation, an argument) mentions."""
    if node is None:
        return set()
    found = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    found |= {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
    for const in ast.walk(node):  # string annotations
        if isinstance(const, ast.Constant) and isinstance(const.value, str) and const.value.isidentifier():
            found.add(const.value)
    return found


def tenant_models(trees: Iterable[ast.Module]) -> set[str]:
    """Mapped classes with a project_id column, and Project."""
    models = set()
    for tree in trees:
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            fields = {t.target.id for t in node.body if isinstance(t, ast.AnnAssign) and isinstance(t.target, ast.Name)}
            table = next((s.value.value for s in node.body if isinstance(s, ast.Assign)
                          and any(isinstance(t, ast.Name) and t.id == "__tablename__" for t in s.targets)
                          and isinstance(s.value, ast.Constant)), None)
            if table and ("project_id" in fields or table == "projects"):
                models.add(node.name)
    return models


def scope_types(trees: Iterable[ast.Module]) -> set[str]:
    """ProjectScope, ProjectContext, their Annotated aliases and classes that carry one."""
    trees = list(trees)
    known = set(SCOPE_TYPES)
    while True:
        grown = set(known)
        for tree in trees:
            for node in ast.walk(tree):
                if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                        and isinstance(node.value, ast.Subscript) and _names(node.value.value) & {"Annotated"}
                        and _names(node.value.slice) & known):
                    grown.add(node.targets[0].id)
                if isinstance(node, ast.ClassDef) and any(
                        isinstance(t, ast.AnnAssign) and _names(t.annotation) & known for t in node.body):
                    grown.add(node.name)
        if grown == known:
            return known
        known = grown


def _call_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _model_in(call: ast.Call, models: set[str]) -> str | None:
    name = _call_name(call)
    if name in LOOKUP_CALLS:
        first = call.args[0] if call.args else None
        return first.id if isinstance(first, ast.Name) and first.id in models else None
    if name not in QUERY_CALLS:
        return None
    for arg in call.args:
        for node in ast.walk(arg):
            if isinstance(node, ast.Name) and node.id in models:
                return node.id
    return None


class _Checker(ast.NodeVisitor):
    def __init__(self, path: Path, module: str, models: set[str], scoped: set[str]) -> None:
        self.path, self.module, self.models, self.scoped = path, module, models, scoped
        self.stack: list[tuple[str, bool]] = []
        self.findings: list[Finding] = []

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        args = node.args
        params = [*args.posonlyargs, *args.args, *args.kwonlyargs, *filter(None, [args.vararg, args.kwarg])]
        takes_scope = any(_names(p.annotation) & (self.scoped | self.models) for p in params)
        name = getattr(node, "name", "<lambda>")
        outer = self.stack[-1][0] + "." if self.stack and not self.stack[-1][0].startswith("<") else ""
        self.stack.append((outer + name, takes_scope))
        self.generic_visit(node)
        self.stack.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function  # noqa: N815

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.stack.append((node.name, False))
        self.generic_visit(node)
        self.stack.pop()

    def visit_Call(self, node: ast.Call) -> None:
        model = _model_in(node, self.models)
        if model is not None and not any(scoped for _, scoped in self.stack):
            where = self.stack[-1][0] if self.stack else "<module>"
            self.findings.append(Finding(self.path, node.lineno, where, model))
        self.generic_visit(node)


def _trusted(module: str) -> bool:
    return module in TRUSTED_MODULES or any(module == p or module.startswith(p + ".") for p in TRUSTED_PACKAGES)


def lint(paths: Iterable[Path], *, allowlist: dict[str, str] | None = None) -> tuple[list[Finding], list[str]]:
    """Findings not covered by the allowlist, and allowlist entries that matched nothing."""
    allowlist = ALLOWLIST if allowlist is None else allowlist
    project_trees = [_parse(p) for p in python_files([SRC / "kap"])]
    models, scoped = tenant_models(project_trees), scope_types(project_trees)
    findings: list[Finding] = []
    for path in python_files(paths):
        module = module_name(path)
        if _trusted(module):
            continue
        checker = _Checker(path, module, models, scope_types([_parse(path)]) | scoped)
        checker.visit(_parse(path))
        findings += checker.findings
    used = {f"{module_name(f.path)}:{f.where}" for f in findings}
    open_findings = [f for f in findings if f"{module_name(f.path)}:{f.where}" not in allowlist]
    stale = sorted(k for k in allowlist if k not in used)
    return open_findings, stale


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or [SRC / "kap"]
    findings, stale = lint(paths, allowlist=ALLOWLIST if not argv else {})
    for finding in findings:
        sys.stdout.write(f"{finding}\n")
    for key in stale:
        sys.stdout.write(f"scripts/lint_scope.py: allowlist entry {key!r} matches no finding any more: remove it\n")
    if findings or stale:
        sys.stdout.write(f"{len(findings)} unscoped tenant queries, {len(stale)} stale allowlist entries\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
