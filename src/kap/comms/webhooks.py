"""Mailgun event webhooks: verify the signature, refuse replays, record bounces and complaints.

Mailgun signs each post with HMAC-SHA256(signing key, timestamp + token). A post is
accepted once: its token is stored, and a second post with the same token, a stale
timestamp or a wrong signature is refused. Hard bounces and complaints put the
address on the suppression list that every send checks.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from kap.comms.models import Subscription, WebhookToken
from kap.comms.scheduler import insert_ignore
from kap.core.audit import record_audit
from kap.core.db import new_id, utcnow
from kap.core.errors import Conflict, Forbidden, NotConfigured
from kap.core.mail import MailSuppression, normalise_address
from kap.core.models import EmailLog, ProjectMember, User
from kap.core.permissions import Action, roles_allowed
from kap.core.scope import ProjectScope, trusted_scope
from kap.stages.models import SignoffRequest

log = logging.getLogger("kap.comms")

MAX_AGE = timedelta(minutes=15)
SUPPRESSING = {"complained": "complaint"}
LOG_STATUS = {"delivered": "delivered", "complained": "complained", "unsubscribed": "unsubscribed"}


class MailgunSignature(BaseModel):
    model_config = ConfigDict(extra="ignore")
    timestamp: str = Field(max_length=20)
    token: str = Field(min_length=10, max_length=200)
    signature: str = Field(max_length=128)


class MailgunWebhook(BaseModel):
    """The JSON Mailgun posts; fields beyond the ones Kap reads are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    signature: MailgunSignature | None = None
    event_data: dict[str, Any] = Field(default_factory=dict, alias="event-data")


@dataclass(frozen=True)
class BounceFlag:
    """An external sign-off recipient whose message bounced: the project's PMs are told."""

    scope: ProjectScope
    email: str
    reason: str

    @property
    def org_id(self) -> uuid.UUID:
        return self.scope.org_id

    @property
    def project_id(self) -> uuid.UUID:
        return self.scope.project_id


def verify(signing_key: str | None, sig: MailgunSignature | None, now: datetime) -> None:
    """Raise unless the post carries a fresh, valid signature."""
    if not signing_key:
        raise NotConfigured("Mailgun webhooks are not configured (MAILGUN_WEBHOOK_SIGNING_KEY)")
    if sig is None:
        raise Forbidden("the webhook is not signed", code="unsigned")
    expected = hmac.new(signing_key.encode(), f"{sig.timestamp}{sig.token}".encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), sig.signature.lower().encode()):  # any text, never a 500
        raise Forbidden("the webhook signature does not match", code="invalid_signature")
    if not sig.timestamp.isdigit() or abs(now.timestamp() - int(sig.timestamp)) > MAX_AGE.total_seconds():
        raise Forbidden("the webhook timestamp is too old or in the future", code="stale_signature")


def accept_once(session: Session, token: str) -> None:
    """Store the webhook token; a token seen before (even by a concurrent request) means a replay."""
    stored = insert_ignore(session.connection(), WebhookToken.__table__,  # type: ignore[arg-type]
                           [{"id": new_id(), "token": token, "created_at": utcnow()}])
    if stored != 1:
        raise Conflict("this webhook was already received", code="replayed")


def handle(session: Session, event: dict[str, Any]) -> BounceFlag | None:
    """Apply one event: update the message's log row, suppress on hard bounce or complaint."""
    kind = str(event.get("event", ""))
    address = normalise_address(str(event.get("recipient", "")))
    row = _log_row(session, event)
    reason = _suppression_reason(kind, str(event.get("severity", "")))
    if row is not None:
        row.status = _log_status(kind, reason, row.status)
        if reason:
            row.error = _describe(event)[:500]
    if reason and address:
        suppress(session, address, reason, _describe(event))
        return _flag(session, row, address, reason)
    return None


def _suppression_reason(kind: str, severity: str) -> str | None:
    if kind == "failed" and severity == "permanent":
        return "bounce"
    return SUPPRESSING.get(kind)


def _log_status(kind: str, reason: str | None, current: str) -> str:
    if reason == "bounce":
        return "bounced"
    if kind == "failed":
        return "temp_failed"
    return LOG_STATUS.get(kind, current)


def _describe(event: dict[str, Any]) -> str:
    status = event.get("delivery-status") or {}
    detail = status.get("description") or status.get("message") or event.get("reason") or ""
    return f"{event.get('event', '')}: {detail}".strip(": ")


def _log_row(session: Session, event: dict[str, Any]) -> EmailLog | None:
    headers = (event.get("message") or {}).get("headers") or {}
    message_id = str(headers.get("message-id", "")).strip("<>")
    if not message_id:
        return None
    return session.scalar(select(EmailLog).where(EmailLog.provider_id == message_id).limit(1))


def suppress(session: Session, address: str, reason: str, detail: str = "") -> None:
    """Put an address on the suppression list (a second report keeps the first reason)."""
    insert_ignore(session.connection(), MailSuppression.__table__, [{  # type: ignore[arg-type]
        "id": new_id(), "email": address, "reason": reason, "detail": detail[:500], "created_at": utcnow()}])


def _flag(session: Session, row: EmailLog | None, address: str, reason: str) -> BounceFlag | None:
    if row is None or row.project_id is None or row.org_id is None or not row.kind.startswith("signoff"):
        return None
    member = session.scalar(select(ProjectMember.id).join(User, User.id == ProjectMember.user_id).where(
        ProjectMember.project_id == row.project_id, User.email == address))
    if member is not None:
        return None
    session.execute(update(SignoffRequest).where(
        SignoffRequest.project_id == row.project_id, SignoffRequest.recipient_email == address,
        SignoffRequest.status == "pending").values(email_status="bounced"))
    record_audit(session, org_id=row.org_id, project_id=row.project_id, actor_id=None, actor_label="mailgun",
                 action="comms.signoff_recipient_bounced", target_type="email", target_id=row.id,
                 details={"email": address, "reason": reason})
    # The signed webhook named this message; its log row names the project.
    scope = trusted_scope(session, row.project_id, purpose="mailgun-webhook", org_id=row.org_id)
    assert scope is not None
    return BounceFlag(scope=scope, email=address, reason=reason)


def pm_addresses(session: Session, scope: ProjectScope) -> list[str]:
    """Emails of the project's PMs and above who have not turned alerts off."""
    project_id = scope.project_id
    alerted = roles_allowed(Action.SIGNOFF_ALERTS)
    rows = session.execute(select(User.id, User.email).join(ProjectMember, ProjectMember.user_id == User.id)
                           .where(ProjectMember.project_id == project_id, ProjectMember.role.in_(alerted),
                                  User.email.is_not(None))).all()
    off = set(session.scalars(select(Subscription.user_id).where(
        Subscription.project_id == project_id, Subscription.category == "alerts",
        Subscription.subscribed.is_(False))))
    return sorted(email for uid, email in rows if uid not in off and email)
