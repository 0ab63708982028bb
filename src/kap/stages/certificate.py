"""The downloadable sign-off certificate: the decision, the signer, the timeline, the document hashes."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from sqlalchemy import select

from kap.core.db import utcnow
from kap.core.deps import ProjectContext
from kap.core.errors import NotFound
from kap.core.models import AuditEvent
from kap.stages.models import SignoffRequest, Stage
from kap.stages.render import render
from kap.stages.service import find_stage

DECIDED = ("approved", "rejected")


def _decided_request(ctx: ProjectContext, stage: Stage, request_id: uuid.UUID | None) -> SignoffRequest:
    stmt = select(SignoffRequest).where(SignoffRequest.stage_id == stage.id,
                                        SignoffRequest.project_id == ctx.project_id,
                                        SignoffRequest.status.in_(DECIDED))
    if request_id is not None:
        stmt = stmt.where(SignoffRequest.id == request_id)
    req = ctx.session.scalar(stmt.order_by(SignoffRequest.decided_at.desc(), SignoffRequest.id).limit(1))
    if req is None:
        raise NotFound("no sign-off decision is recorded for this stage", code="no_decision")
    return req


def _record(req: SignoffRequest, project_name: str, stage: Stage) -> dict[str, Any]:
    shot = req.snapshot or {}
    assert req.decided_at is not None
    return {
        "request_id": str(req.id),
        "project": shot.get("project", project_name),
        "stage": shot.get("stage", {"title": stage.title, "summary": stage.summary}),
        "decision": req.status,
        "channel": req.channel,
        "signer_name": req.signer_name,
        "signer_email": req.signer_email,
        "note": req.note,
        "decided_at": req.decided_at.isoformat(),
        "ip": req.decided_ip,
        "user_agent": req.decided_user_agent,
        "documents": shot.get("documents", []),
    }


def fingerprint(record: dict[str, Any]) -> str:
    """A SHA-256 over the canonical JSON of what was decided, by whom, when, on which documents."""
    keys = ("request_id", "decision", "signer_name", "signer_email", "note", "decided_at", "documents")
    canonical = json.dumps({k: record[k] for k in keys}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _timeline(ctx: ProjectContext, stage: Stage, req: SignoffRequest) -> list[dict[str, Any]]:
    ids = {str(req.id)}
    # The request this one replaced (a resend) belongs to the same story.
    ids |= {str(i) for i in ctx.session.scalars(select(SignoffRequest.id).where(
        SignoffRequest.stage_id == stage.id, SignoffRequest.replaced_by_id == req.id))}
    events = ctx.session.scalars(select(AuditEvent).where(
        AuditEvent.project_id == ctx.project_id, AuditEvent.target_type == "signoff_request",
        AuditEvent.target_id.in_(ids)).order_by(AuditEvent.created_at, AuditEvent.id))
    return [{"at": e.created_at, "action": e.action.removeprefix("signoff."), "actor": e.actor_label, "ip": e.ip}
            for e in events]


def certificate(ctx: ProjectContext, stage_id: uuid.UUID,
                request_id: uuid.UUID | None = None) -> tuple[str, dict[str, Any], str]:
    """Render the certificate of a stage's latest (or a given) decision: (html, record, fingerprint)."""
    stage = find_stage(ctx, stage_id)
    req = _decided_request(ctx, stage, request_id)
    record = _record(req, ctx.project_name, stage)
    digest = fingerprint(record)
    html = render("certificate.html", record=record, timeline=_timeline(ctx, stage, req), fingerprint=digest,
                  issued_at=utcnow())
    return html, record, digest
