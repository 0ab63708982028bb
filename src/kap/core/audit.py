"""Audit events (in the caller's transaction) and telemetry events (on their own)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy.orm import Session

from kap.core.db import Database
from kap.core.models import AuditEvent, TelemetryEvent

log = logging.getLogger("kap.telemetry")


def record_audit(session: Session, *, org_id: uuid.UUID, action: str, actor_id: uuid.UUID | None,
                 actor_label: str = "", project_id: uuid.UUID | None = None, target_type: str = "",
                 target_id: str | uuid.UUID = "", details: dict[str, Any] | None = None,
                 ip: str | None = None, user_agent: str | None = None) -> AuditEvent:
    """Add an audit row to the session, so it commits or rolls back with the change."""
    event = AuditEvent(org_id=org_id, project_id=project_id, actor_id=actor_id,
                       actor_label=actor_label[:320], action=action, target_type=target_type,
                       target_id=str(target_id), details=details or {}, ip=ip,
                       user_agent=(user_agent or "")[:400] or None)
    session.add(event)
    return event


def record_telemetry(db: Database, *, kind: str, status: int | None = None, method: str = "",
                     path: str = "", request_id: str = "", user_id: uuid.UUID | None = None,
                     org_id: uuid.UUID | None = None, project_id: uuid.UUID | None = None,
                     client_ip: str | None = None, details: dict[str, Any] | None = None) -> None:
    """Store a telemetry row through the service engine; never raise."""
    try:
        with db.service_transaction() as session:
            session.add(TelemetryEvent(kind=kind, status=status, method=method, path=path[:400],
                                       request_id=request_id, user_id=user_id, org_id=org_id,
                                       project_id=project_id, client_ip=client_ip,
                                       details=details or {}))
    except Exception:  # the database may be the thing that failed
        log.warning("telemetry not stored: %s %s %s", kind, status, path, exc_info=True)
