"""The tenant sentinel: the real service reads and every project-scoped table, run as the
caller, must hand back nothing of another project."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter
from sqlalchemy import Table, func, select

from kap.core.db import Base
from kap.core.deps import ProjectContext, RuntimeDep, require, resolve_project, visible_projects
from kap.core.errors import KapError, NotFound
from kap.core.permissions import Action
from kap.core.routes import AnswerInThread
from kap.sentinel.reads import PROBES, Hints, leaked, target_words
from kap.sentinel.schemas import EntitledReport, LeakReport

router = APIRouter(tags=["sentinel"], route_class=AnswerInThread)
SentinelRun = Annotated[ProjectContext, require(Action.SENTINEL_RUN)]


def tenant_tables() -> list[Table]:
    """Every table that holds rows of a project (it has a project_id column), and projects itself."""
    tables = [t for t in Base.metadata.sorted_tables if "project_id" in t.c]
    return [Base.metadata.tables["projects"], *tables]


def _key(table: Table) -> Any:
    return table.c.id if table.name == "projects" else table.c.project_id


@router.get("/api/sentinel/tenant-leak")
def tenant_leak(target_project_id: uuid.UUID, ctx: SentinelRun,
                runtime: RuntimeDep) -> EntitledReport | LeakReport:
    """Run every project-scoped read with the caller's identity against the target project.

    Three walls are checked: the service reads themselves (each domain's real read
    function, run in the caller's own project, must return nothing of the target), the
    app's scoping of raw tables (the reachable-projects filter) and, on PostgreSQL,
    row-level security underneath (the same reads without any app filter). The answer
    is the same whether the target exists or not.
    """
    session = ctx.session
    try:
        resolve_project(session, ctx.identity, target_project_id)
        reachable = True
    except NotFound:
        reachable = False
    checks: list[dict[str, Any]] = [{"check": "access", "denied": not reachable}]
    if reachable:
        # The caller is entitled to the target: whatever comes back is theirs to see.
        return EntitledReport.model_validate({"leak": False, "checks": checks})
    leak = False
    with runtime.db.service_session() as trusted:
        for read in _service_reads(ctx, trusted, target_project_id):
            leak = leak or read["leaked"] > 0
            checks.append(read)
    is_pg = session.get_bind().dialect.name == "postgresql"
    visible = visible_projects(ctx.identity)
    for table in tenant_tables():
        key = _key(table)
        app_rows = session.scalar(select(func.count()).select_from(table)
                                  .where(key == target_project_id, key.in_(visible))) or 0
        check: dict[str, Any] = {"check": f"table:{table.name}", "app_rows": app_rows}
        if is_pg:
            db_rows = session.scalar(select(func.count()).select_from(table).where(key == target_project_id)) or 0
            check["rls_rows"] = db_rows
            leak = leak or db_rows > 0
        else:
            check["rls_rows"] = None
        leak = leak or app_rows > 0
        checks.append(check)
    return LeakReport.model_validate({"leak": leak, "checks": checks})


def _service_reads(ctx: ProjectContext, trusted: Any, target: uuid.UUID) -> list[dict[str, Any]]:
    """Run each probe in the caller's project; count what came back that is the target's.

    Only the leaked count is reported: how much the caller's own reads return depends on
    words taken from the target, and would tell whether it exists.
    """
    hints = Hints(words=target_words(trusted, target))
    # The reads run outside their own routes: each asks the permissions table for itself.
    ctx = replace(ctx, declared=None)
    out = []
    for probe in PROBES:
        found, skipped = 0, None
        try:
            for result in probe.run(ctx, hints):
                found += leaked(trusted, result, ctx.project_id, target)
        except KapError as exc:  # a read that refuses this caller returns nothing to leak
            skipped = exc.code
        out.append({"check": f"read:{probe.name}", "leaked": found, "skipped": skipped})
    return out
