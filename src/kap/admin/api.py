"""The audit viewer and telemetry, for owners and admins."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from kap.admin.activity import actor_name, details_text, filter_events, people, sentence
from kap.admin.schemas import AuditEventRead, AuditPage, TelemetryPage, TelemetryRead
from kap.core.deps import CurrentIdentity, ProjectContext, UserSession, require, resolve_org_admin
from kap.core.errors import Forbidden, NotFound, raises
from kap.core.http import content_types
from kap.core.models import AuditEvent, TelemetryEvent
from kap.core.permissions import Action
from kap.core.routes import AnswerInThread
from kap.core.schemas import Moment

router = APIRouter(tags=["admin"], route_class=AnswerInThread)

AUDIT_COLUMNS = ("created_at", "action", "actor_label", "actor_id", "project_id", "target_type",
                 "target_id", "ip", "details")


def _page(stmt: Select[Any], session: Any, limit: int, offset: int) -> tuple[int, list[Any]]:
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = session.scalars(stmt.limit(limit).offset(offset)).all()
    return total, list(rows)


def _row(event: AuditEvent) -> dict[str, Any]:
    return {"id": event.id, "created_at": event.created_at, "action": event.action,
            "actor_id": event.actor_id, "actor_label": event.actor_label, "project_id": event.project_id,
            "target_type": event.target_type, "target_id": event.target_id, "ip": event.ip,
            "details": event.details}


class AuditFilters:
    """Query filters shared by the project and org audit views."""

    def __init__(
        self,
        action: str | None = Query(default=None, max_length=80),
        actor: str | None = Query(default=None, max_length=320),
        since: Moment | None = None, until: Moment | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
        format: Literal["json", "csv"] = "json",
    ) -> None:
        self.action, self.actor, self.since, self.until = action, actor, since, until
        self.limit, self.offset, self.format = limit, offset, format

    def apply(self, session: Session, stmt: Select[Any]) -> Select[Any]:
        return filter_events(session, stmt, action=self.action, actor=self.actor, since=self.since,
                             until=self.until)


Filters = Annotated[AuditFilters, Depends()]
AuditRead = Annotated[ProjectContext, require(Action.AUDIT_READ)]


def _audit_answer(session: Session, stmt: Select[Any], f: AuditFilters) -> AuditPage | Response:
    stmt = f.apply(session, stmt.order_by(AuditEvent.created_at.desc(), AuditEvent.id))
    total, events = _page(stmt, session, f.limit if f.format == "json" else 100_000, f.offset)
    if f.format == "csv":
        return _csv(session, events)
    return AuditPage(total=total, limit=f.limit, offset=f.offset,
                     events=[AuditEventRead.model_validate(e) for e in events])


@router.get("/api/audit", response_model=AuditPage, responses=content_types("text/csv"))
def project_audit(ctx: AuditRead, filters: Filters) -> AuditPage | Response:
    """Audit events of one project, for its owners and admins (JSON or CSV)."""
    stmt = select(AuditEvent).where(AuditEvent.project_id == ctx.project_id)
    return _audit_answer(ctx.session, stmt, filters)


@router.get("/api/orgs/{org_id}/audit", response_model=AuditPage, responses=content_types("text/csv"))
@raises(Forbidden)
def org_audit(org_id: uuid.UUID, identity: CurrentIdentity, session: UserSession,
              filters: Filters) -> AuditPage | Response:
    """Audit events of a whole org, for org owners and admins (JSON or CSV)."""
    org = resolve_org_admin(session, identity, org_id)
    return _audit_answer(session, select(AuditEvent).where(AuditEvent.org_id == org.org_id), filters)


def _csv(session: Session, events: list[AuditEvent]) -> Response:
    """Every matching event as CSV: the person by name beside their id, details as `key: value` pairs."""
    names = people(session, [e.actor_id for e in events] + [e.target_id for e in events])
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow((*AUDIT_COLUMNS[:2], "actor", "summary", *AUDIT_COLUMNS[2:]))
    for e in events:
        row = _row(e)
        cells = [row[c] for c in AUDIT_COLUMNS]
        cells[-1] = details_text(e.details)
        cells[0] = e.created_at.isoformat()
        values = [*cells[:2], actor_name(e, names), sentence(e, names), *cells[2:]]
        writer.writerow([_csv_safe(str(v) if v is not None else "") for v in values])
    return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="kap-audit.csv"'})


def _csv_safe(value: str) -> str:
    """Neutralise spreadsheet formulas in exported cells."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@router.get("/api/telemetry")
@raises(Forbidden, NotFound)
def telemetry_events(
    identity: CurrentIdentity, session: UserSession, org_id: uuid.UUID | None = None,
    kind: str | None = Query(default=None, max_length=40),
    limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> TelemetryPage:
    """Telemetry (429s, 5xx, job failures) of an org the caller administers."""
    org = resolve_org_admin(session, identity, org_id)
    stmt = select(TelemetryEvent).where(TelemetryEvent.org_id == org.org_id) \
        .order_by(TelemetryEvent.created_at.desc(), TelemetryEvent.id)
    if kind:
        stmt = stmt.where(TelemetryEvent.kind == kind)
    total, events = _page(stmt, session, limit, offset)
    return TelemetryPage(total=total, events=[TelemetryRead.model_validate(e) for e in events])
