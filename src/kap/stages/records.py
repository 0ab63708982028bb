"""Low-level pieces every stage path shares: who acts, audit rows, status moves, snapshots."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from kap.core.audit import record_audit
from kap.core.db import utcnow
from kap.core.deps import ProjectContext
from kap.core.scope import ProjectScope
from kap.documents.models import Artifact
from kap.stages.models import SignoffRequest, Stage, StageArtifact
from kap.stages.schemas import ArtifactRef, SignoffRequestRead

LINK_INVALID = "This sign-off link is not valid. It may have expired or been withdrawn; ask the sender for a new one."


@dataclass(frozen=True)
class Actor:
    """Whoever causes an event: a signed-in user, an external signer, or the scheduler."""

    org_id: uuid.UUID
    project_id: uuid.UUID
    user_id: uuid.UUID | None = None
    label: str = ""
    ip: str | None = None
    user_agent: str | None = None


def actor_of(ctx: ProjectContext) -> Actor:
    """The signed-in caller as an Actor."""
    return Actor(org_id=ctx.org_id, project_id=ctx.project_id, user_id=ctx.user_id,
                 label=ctx.identity.label, ip=ctx.ip, user_agent=ctx.user_agent)


def audit(session: Session, actor: Actor, action: str, target_type: str, target_id: object,
          **details: Any) -> None:
    """Record one event for an actor in the session's transaction."""
    record_audit(session, org_id=actor.org_id, project_id=actor.project_id, actor_id=actor.user_id,
                 actor_label=actor.label, action=action, target_type=target_type,
                 target_id=str(target_id), details=details, ip=actor.ip, user_agent=actor.user_agent)


def move_stage(session: Session, actor: Actor, stage: Stage, status: str, **details: Any) -> None:
    """Change a stage's status and record the change (no-op when it is already there)."""
    if stage.status == status:
        return
    old = stage.status
    stage.status = status
    stage.updated_at = utcnow()
    audit(session, actor, "stage.status_changed", "stage", stage.id, title=stage.title,
          **{"from": old, "to": status}, **details)


def stage_artifacts(session: Session, scope: ProjectScope,
                    stage_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[ArtifactRef]]:
    """The documents attached to each stage, by name."""
    out: dict[uuid.UUID, list[ArtifactRef]] = {sid: [] for sid in stage_ids}
    if not stage_ids:
        return out
    rows = session.execute(
        select(StageArtifact.stage_id, Artifact)
        .join(Artifact, Artifact.id == StageArtifact.artifact_id)
        .where(StageArtifact.project_id == scope.project_id, StageArtifact.stage_id.in_(stage_ids))
        .order_by(Artifact.name, Artifact.id)
    ).all()
    for stage_id, art in rows:
        out[stage_id].append(ArtifactRef(id=art.id, name=art.name, version=art.version, sha256=art.sha256))
    return out


def snapshot(session: Session, scope: ProjectScope, stage: Stage, project_name: str) -> dict[str, Any]:
    """What the signer decided on: the stage as it stood and each attached document version."""
    docs = stage_artifacts(session, scope, [stage.id])[stage.id]
    return {
        "project": project_name,
        "stage": {"id": str(stage.id), "title": stage.title, "summary": stage.summary,
                  "planned_start": _iso(stage.planned_start), "planned_end": _iso(stage.planned_end)},
        "documents": [{"artifact_id": str(d.id), "name": d.name, "version": d.version, "sha256": d.sha256}
                      for d in docs],
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def effective_status(req: SignoffRequest, now: datetime | None = None) -> str:
    """A pending request past its expiry reads as expired before the expiry job marks it."""
    if req.status == "pending" and req.expires_at <= (now or utcnow()):
        return "expired"
    return req.status


def request_read(req: SignoffRequest) -> SignoffRequestRead:
    """The API view of a request: never the token."""
    return SignoffRequestRead(
        id=req.id, stage_id=req.stage_id, channel=req.channel, status=effective_status(req),
        recipient_email=req.recipient_email, recipient_name=req.recipient_name, message=req.message,
        email_status=req.email_status, created_at=req.created_at, expires_at=req.expires_at,
        opened_at=req.opened_at, open_count=req.open_count, decided_at=req.decided_at,
        revoked_at=req.revoked_at, replaced_by_id=req.replaced_by_id, signer_name=req.signer_name,
        signer_email=req.signer_email, note=req.note, reminder_count=req.reminder_count or 0,
        reminded_at=req.reminded_at, expiry_notified_at=req.expiry_notified_at,
        code_verified_at=req.code_verified_at)


def revoke_open_requests(session: Session, actor: Actor, stage: Stage, *, reason: str,
                         replaced_by: uuid.UUID | None = None) -> list[uuid.UUID]:
    """Withdraw the stage's pending link (at most one), atomically; return the ids withdrawn."""
    now = utcnow()
    ids = list(session.execute(
        update(SignoffRequest)
        .where(SignoffRequest.stage_id == stage.id, SignoffRequest.status == "pending")
        .values(status="revoked", revoked_at=now, replaced_by_id=replaced_by)
        .returning(SignoffRequest.id)
        .execution_options(synchronize_session=False)
    ).scalars())
    for request_id in ids:
        audit(session, actor, "signoff.revoked", "signoff_request", request_id, stage_id=str(stage.id),
              reason=reason)
    return ids
