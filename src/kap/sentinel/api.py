"""The tenant sentinel: every project-scoped table read as the caller against another project."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter
from sqlalchemy import Table, func, select

from kap.core.db import Base
from kap.core.deps import ProjectContext, require, resolve_project, visible_projects
from kap.core.errors import NotFound

router = APIRouter(tags=["sentinel"])
SentinelRun = Annotated[ProjectContext, require("sentinel.run")]


def tenant_tables() -> list[Table]:
    """Every table that holds rows of a project (it has a project_id column), and projects itself."""
    tables = [t for t in Base.metadata.sorted_tables if "project_id" in t.c]
    return [Base.metadata.tables["projects"], *tables]


def _key(table: Table) -> Any:
    return table.c.id if table.name == "projects" else table.c.project_id


@router.get("/api/sentinel/tenant-leak")
def tenant_leak(target_project_id: uuid.UUID, ctx: SentinelRun) -> dict[str, Any]:
    """Run every project-scoped read with the caller's identity against the target project.

    Two walls are checked: the app's scoping (the choke point and the reachable-projects
    filter every repository applies) and, on PostgreSQL, row-level security underneath
    (the same reads without any app filter). The answer is the same whether the target
    exists or not.
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
        return {"ok": True, "leak": False, "authorized": True, "checks": checks}
    is_pg = session.get_bind().dialect.name == "postgresql"
    leak = False
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
    return {"ok": True, "leak": leak, "checks": checks}
