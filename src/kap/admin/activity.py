"""Audit events as people read them: who by name, what as a sentence, when in the project's time zone."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from kap.core.models import AuditEvent, User
from kap.core.permissions import ROLE_LABELS

UUIDISH = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
STAGE_STATES = {"pending": "not started", "in_progress": "in progress", "in_review": "awaiting sign-off",
                "signed_off": "signed off", "rejected": "rejected"}
CATEGORIES = {"digest": "the weekly digest", "signoff": "sign-off news", "alerts": "alerts"}


def display_name(user: User | None) -> str | None:
    """A person as pages show them: their name, else their email."""
    if user is None:
        return None
    return user.name or user.email


def people(session: Session, ids: Iterable[object]) -> dict[str, str]:
    """Names (else emails) of the given user ids, as strings; unknown ids are left out."""
    wanted = {uuid.UUID(str(i)) for i in ids if i and UUIDISH.match(str(i))}
    if not wanted:
        return {}
    rows = session.scalars(select(User).where(User.id.in_(wanted))).all()
    return {str(u.id): display_name(u) or "A member without a name" for u in rows}


def matching_people(session: Session, text: str) -> list[uuid.UUID]:
    """Ids of users whose name or email contains `text` (the audit filter by person)."""
    pattern = text.strip()
    rows = session.scalars(select(User.id).where(or_(User.name.icontains(pattern, autoescape=True),
                                                     User.email.icontains(pattern, autoescape=True))).limit(500))
    return list(rows)


def actor_name(event: AuditEvent, names: dict[str, str]) -> str:
    """Who did it: the person's name, a signer's address, or Kap itself; never a bare id."""
    if event.actor_id and str(event.actor_id) in names:
        return names[str(event.actor_id)]
    label = event.actor_label or ""
    if label.startswith("link:"):
        return label.removeprefix("link:")
    if label in ("", "internal", "system", "scheduler"):
        return "Kap"
    if label == "mailgun":
        return "The mail provider"
    if UUIDISH.match(label):
        return "A former member"
    return label


def _target_person(event: AuditEvent, names: dict[str, str], details: dict[str, Any]) -> str:
    return names.get(event.target_id) or details.get("email") or "someone"


def _role(value: object) -> str:
    return ROLE_LABELS.get(str(value), str(value))


def sentence(event: AuditEvent, names: dict[str, str]) -> str:
    """One event as a sentence: "Priya PM requested sign-off of Design from Dana Whitfield"."""
    who, d, a = actor_name(event, names), dict(event.details or {}), event.action
    doc, title = d.get("name") or "a document", d.get("stage_title") or d.get("title") or "a stage"
    verdict = "approved" if d.get("decision") == "approved" else "rejected"
    texts: dict[str, str] = {
        "project.created": f"{who} created the project {d.get('name', '')}".rstrip(),
        "project.renamed": f"{who} renamed the project from {d.get('old')} to {d.get('new')}",
        "project.archived": f"{who} archived the project",
        "project.unarchived": f"{who} unarchived the project",
        "member.invited": f"{who} invited {_target_person(event, names, d)} as {_role(d.get('role'))}",
        "member.added": f"{who} added {_target_person(event, names, d)} as {_role(d.get('role'))}",
        "member.role_changed": f"{who} made {_target_person(event, names, d)} {_role(d.get('new'))} "
                               f"(was {_role(d.get('old'))})",
        "member.removed": f"{who} removed {_target_person(event, names, d)} from the project",
        "member.left": f"{who} left the project",
        "document.uploaded": f"{who} uploaded {doc}",
        "document.reingested": f"{who} re-ingested {doc}",
        "document.deleted": f"{who} deleted {doc}",
        "document.ocr_resolved": f"{who} resolved {doc} in the Needs OCR lane",
        "stage.created": f"{who} added the stage {title}",
        "stage.updated": f"{who} edited the stage {title}",
        "stage.deleted": f"{who} deleted the stage {title}",
        "stage.status_changed": f"{title} moved from {STAGE_STATES.get(d.get('from', ''), d.get('from'))} to "
                                f"{STAGE_STATES.get(d.get('to', ''), d.get('to'))} ({who})",
        "stage.template_applied": f"{who} applied the standard stage plan",
        "stage.signer_added": f"{who} allowed {_target_person(event, names, d)} to record sign-off decisions",
        "stage.signer_removed": f"{who} withdrew {_target_person(event, names, d)}'s sign-off right",
        "signoff.created": f"{who} requested sign-off of {title} from {d.get('recipient', 'a signer')}",
        "signoff.emailed": "The sign-off request mail could not be sent" if d.get("status") == "failed"
                           else "The sign-off request mail went out",
        "signoff.resent": f"{who} sent a fresh sign-off link",
        "signoff.revoked": f"{who} withdrew a sign-off link",
        "signoff.expired": "A sign-off link expired unused",
        "signoff.opened": f"{who} opened the sign-off link",
        "signoff.decided": f"{d.get('signer_name') or who} {verdict} the stage"
                           f"{' (recorded in Kap)' if d.get('channel') == 'internal' else ''}",
        "backup.created": f"{'Kap' if who == 'Kap' else who} wrote a backup",
        "backup.trimmed": "Kap removed backups past their retention",
        "backup.reingest": f"{who} stored {d.get('entry') or 'a file'} back from a backup",
        "backup.restored": f"{who} restored a backup",
        "comms.settings_updated": f"{who} changed the email schedule",
        "comms.subscriptions_changed": f"{who} changed their email subscriptions",
        "comms.external_recipients_set": f"{who} changed the external email recipients",
        "comms.unsubscribed": f"{who} unsubscribed from {CATEGORIES.get(d.get('category', ''), 'emails')}",
        "comms.signoff_recipient_bounced": "A sign-off mail could not be delivered",
        "digest.test_sent": f"{who} sent a test digest to {d.get('to', 'someone')}",
        "ask.asked": f"{who} asked Kap a question",
    }
    return texts.get(a) or f"{who}: {a.replace('_', ' ').replace('.', ' · ')}"


def details_text(details: dict[str, Any] | None, *, ids: bool = True) -> str:
    """Event details as `key: value` pairs for a table cell or a CSV field (no Python repr).

    Pages pass `ids=False`: a person reads names and titles; record ids stay in the CSV export.
    """
    def show(value: Any) -> str:
        if isinstance(value, dict):
            return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
        if isinstance(value, list | tuple):
            return "[" + ", ".join(show(v) for v in value) + "]"
        return "" if value is None else str(value)
    items = list((details or {}).items())
    if not ids:
        items = [(k, v) for k, v in items if not (isinstance(v, str) and UUIDISH.match(v)) and not k.endswith("_id")]
    return "; ".join(f"{k}: {show(v)}" for k, v in items)


def filter_events(session: Session, stmt: Select[Any], *, action: str | None = None, actor: str | None = None,
                  since: datetime | None = None, until: datetime | None = None) -> Select[Any]:
    """The audit filters the viewer and the API share: action prefix, person (id, name or email), period."""
    if action:
        stmt = stmt.where(or_(AuditEvent.action == action,
                              AuditEvent.action.startswith(f"{action.rstrip('.')}.", autoescape=True)))
    if actor:
        stmt = stmt.where(_actor_filter(session, actor))
    if since:
        stmt = stmt.where(AuditEvent.created_at >= since)
    if until:
        stmt = stmt.where(AuditEvent.created_at < until)
    return stmt


def _actor_filter(session: Session, actor: str) -> Any:
    text = actor.strip()
    if UUIDISH.match(text):
        return AuditEvent.actor_id == uuid.UUID(text)
    ids = matching_people(session, text)
    by_label = AuditEvent.actor_label.icontains(text, autoescape=True)
    return or_(by_label, AuditEvent.actor_id.in_(ids)) if ids else by_label


def label_names(session: Session, labels: Iterable[str]) -> dict[str, str]:
    """People's names for actor labels (a user id or an email); a label with no user is left out."""
    wanted = {label for label in labels if label}
    names = people(session, wanted)
    emails = {label.lower() for label in wanted if "@" in label and not label.startswith("link:")}
    if emails:
        for user in session.scalars(select(User).where(User.email.in_(emails))):
            if user.email and (name := display_name(user)):
                names[user.email] = name
    return names


def label_name(label: str, names: dict[str, str]) -> str:
    """One actor label as a person's name (see `label_names`), never a bare id."""
    if label in names:
        return names[label]
    if label.startswith("link:"):
        return label.removeprefix("link:")
    return "A former member" if UUIDISH.match(label) else (label or "Kap")
