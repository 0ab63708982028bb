"""The sign-off certificate: the decision, the signer, the timeline, the document hashes (HTML, JSON, PDF)."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kap.core.branding import Brand, brand_of
from kap.core.db import utcnow
from kap.core.deps import ProjectContext
from kap.core.errors import NotFound
from kap.core.models import AuditEvent, User
from kap.stages.certificate_pdf import render_pdf
from kap.stages.models import SignoffRequest, Stage, StageRevision
from kap.stages.render import render
from kap.stages.service import find_stage

DECIDED = ("approved", "rejected")
# Events about the certificate itself: left out so every copy of it has the same bytes.
AFTER_THE_FACT = ("signoff.certificate_issued", "signoff.decision_mailed")


@dataclass
class Certificate:
    """Everything a certificate shows, in every format."""

    record: dict[str, Any]
    timeline: list[dict[str, Any]]
    fingerprint: str
    brand: Brand

    def html(self) -> str:
        """The certificate as a standalone HTML page."""
        return render("certificate.html", record=self.record, timeline=self.timeline, fingerprint=self.fingerprint,
                      brand=self.brand, issued_at=utcnow())

    def pdf(self) -> bytes:
        """The certificate as PDF bytes (the same bytes for the same decision)."""
        return render_pdf(self.record, self.timeline, self.fingerprint)

    @property
    def filename(self) -> str:
        return f"signoff-{self.record['request_id']}"


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


def _person(session: Session, user_id: uuid.UUID | None) -> str | None:
    user = session.get(User, user_id) if user_id else None
    if user is None:
        return None
    return f"{user.name} <{user.email}>" if user.name and user.email else (user.name or user.email)


def _record(session: Session, req: SignoffRequest, project_name: str, stage: Stage, brand: Brand) -> dict[str, Any]:
    shot = req.snapshot or {}
    assert req.decided_at is not None
    revision = session.get(StageRevision, req.revision_id) if req.revision_id else None
    return {
        "request_id": str(req.id),
        "org": brand.name,
        "project": shot.get("project", project_name),
        "stage": shot.get("stage", {"title": stage.title, "summary": stage.summary}),
        "revision": revision.number if revision else None,
        "decision": req.status,
        "channel": req.channel,
        "signer_name": req.signer_name,
        "signer_email": req.signer_email,
        "requester": _person(session, req.created_by),
        "note": req.note,
        "decided_at": req.decided_at.isoformat(),
        "ip": req.decided_ip,
        "user_agent": req.decided_user_agent,
        "verification": f"6-digit code mailed to {req.recipient_email}, confirmed {req.code_verified_at.isoformat()}"
                        if req.code_verified_at else "not required",
        "documents": shot.get("documents", []),
    }


def fingerprint(record: dict[str, Any]) -> str:
    """A SHA-256 over the canonical JSON of what was decided, by whom, when, on which documents."""
    keys = ("request_id", "decision", "signer_name", "signer_email", "note", "decided_at", "documents")
    canonical = json.dumps({k: record[k] for k in keys}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _actor_name(session: Session, event: AuditEvent, requests: dict[str, SignoffRequest],
                names: dict[uuid.UUID, str | None]) -> str:
    if event.actor_id is not None:
        if event.actor_id not in names:
            names[event.actor_id] = _person(session, event.actor_id)
        return names[event.actor_id] or event.actor_label
    if event.actor_label.startswith("link:"):
        req = requests.get(event.target_id)
        email = event.actor_label.removeprefix("link:")
        who = (req.signer_name or req.recipient_name) if req else None
        return f"{who} <{email}>" if who else email
    if event.actor_label == "scheduler":
        return "Kap (scheduled)"
    return event.actor_label


def _timeline(session: Session, stage: Stage, req: SignoffRequest) -> list[dict[str, Any]]:
    # The request this one replaced (a resend) belongs to the same story.
    related = {str(req.id): req}
    related |= {str(r.id): r for r in session.scalars(select(SignoffRequest).where(
        SignoffRequest.stage_id == stage.id, SignoffRequest.replaced_by_id == req.id))}
    events = session.scalars(select(AuditEvent).where(
        AuditEvent.project_id == stage.project_id, AuditEvent.target_type == "signoff_request",
        AuditEvent.target_id.in_(list(related)), AuditEvent.action.not_in(AFTER_THE_FACT))
        .order_by(AuditEvent.created_at, AuditEvent.id))
    names: dict[uuid.UUID, str | None] = {}
    return [{"at": e.created_at, "action": e.action.removeprefix("signoff."),
             "by": _actor_name(session, e, related, names), "actor": e.actor_label, "ip": e.ip,
             "user_agent": e.user_agent} for e in events]


def build(session: Session, stage: Stage, req: SignoffRequest, project_name: str) -> Certificate:
    """The certificate of one decided request."""
    brand = brand_of(session, stage.org_id)
    record = _record(session, req, project_name, stage, brand)
    return Certificate(record=record, timeline=_timeline(session, stage, req), fingerprint=fingerprint(record),
                       brand=brand)


def certificate(ctx: ProjectContext, stage_id: uuid.UUID, request_id: uuid.UUID | None = None) -> Certificate:
    """The certificate of a stage's latest (or a given) decision."""
    stage = find_stage(ctx, stage_id)
    return build(ctx.session, stage, _decided_request(ctx, stage, request_id), ctx.project_name)


def pdf_digest(data: bytes) -> str:
    """The SHA-256 of a certificate file, as recorded in the audit log."""
    return hashlib.sha256(data).hexdigest()
