"""Reminders to the signers of open links, and a notice to the team when a link expires unanswered.

Both run from the five-minute stage job over every project on the service engine.

A reminder goes out `reminder_days` (the project's sign-off settings, default 3; 0 turns them
off) after the link was sent or last reminded, or on the link's last day when that comes
first, at most MAX_REMINDERS times, only while the link can still be used. It follows the
project's comms rules: inside quiet hours (in the project's timezone) or once the daily cap
to that address is reached it waits, and a later pass sends it; an address on the
suppression list, or one that unsubscribed from the project's sign-off news, gets none.
Each reminder carries a link of its own (the first link and every earlier reminder's keep
working while the request is open) and is claimed with one conditional UPDATE, so
overlapping passes send it once.

When a link expires without a decision, its requester and the stage owner are told once
(`expiry_notified_at`). Archived projects send nothing.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from kap.comms.digest import Recipient
from kap.comms.models import Subscription
from kap.comms.scheduler import delivery_wait
from kap.comms.service import ensure_subscription, external_key, member_key, unsubscribe_url
from kap.core.branding import brand_of
from kap.core.db import utcnow
from kap.core.mail import Mail, normalise_address, suppression_of
from kap.core.models import Project, ProjectMember, User
from kap.core.runtime import Runtime
from kap.core.scope import trusted_scope
from kap.core.security import hash_token, new_token
from kap.stages.models import SignoffReminderLink, SignoffRequest, Stage, StageSettings
from kap.stages.notify import stage_link, team_of
from kap.stages.project_settings import DEFAULT_REMINDER_DAYS, MAX_REMINDERS
from kap.stages.records import Actor, audit
from kap.stages.render import render
from kap.stages.signoff import signoff_link

log = logging.getLogger("kap.stages")
# Links that expired longer ago than this are not announced (a first run after an upgrade).
NOTICE_HORIZON = timedelta(days=7)
FINAL_DAY = timedelta(days=1)


@dataclass
class ReminderReport:
    sent: list[uuid.UUID] = field(default_factory=list)
    deferred: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)

    def count(self, bucket: dict[str, int], reason: str) -> None:
        bucket[reason] = bucket.get(reason, 0) + 1


def _open_requests(session: Session, now: datetime) -> list[tuple[SignoffRequest, int]]:
    """Open external links of live stages in live projects, with their project's reminder delay."""
    days = func.coalesce(StageSettings.reminder_days, DEFAULT_REMINDER_DAYS)
    rows = session.execute(
        select(SignoffRequest, days)
        .join(Stage, Stage.id == SignoffRequest.stage_id)
        .join(Project, Project.id == SignoffRequest.project_id)
        .outerjoin(StageSettings, StageSettings.project_id == SignoffRequest.project_id)
        .where(SignoffRequest.status == "pending", SignoffRequest.channel == "external",
               SignoffRequest.expires_at > now, SignoffRequest.reminder_count < MAX_REMINDERS,
               Stage.deleted_at.is_(None), Stage.archived_at.is_(None), Project.archived_at.is_(None))
        .order_by(SignoffRequest.created_at, SignoffRequest.id)).all()
    return [(req, int(delay)) for req, delay in rows]


def due_at(req: SignoffRequest, reminder_days: int) -> datetime | None:
    """When the next reminder falls due, or None when no more are owed.

    `reminder_days` after the link was sent or last reminded; but when that is within the
    link's last day (a 72-hour link and a 3-day delay), as that last day begins
    instead, once.
    """
    if reminder_days <= 0 or req.reminder_count >= MAX_REMINDERS:
        return None
    last = req.reminded_at or req.created_at
    due = last + timedelta(days=reminder_days)
    final_day = req.expires_at - FINAL_DAY
    if due > final_day and last < final_day:
        due = final_day
    return due if due < req.expires_at else None


def is_due(req: SignoffRequest, reminder_days: int, now: datetime) -> bool:
    """Whether a reminder is owed now."""
    due = due_at(req, reminder_days)
    return due is not None and due <= now


def _unsubscribed(session: Session, req: SignoffRequest) -> bool:
    """Whether the signer turned off this project's sign-off news (as an outside address or as a member)."""
    address = normalise_address(req.recipient_email)
    member = session.scalar(select(User.id).join(ProjectMember, ProjectMember.user_id == User.id).where(
        ProjectMember.project_id == req.project_id, func.lower(User.email) == address))
    keys = [external_key(address)] + ([member_key(member)] if member else [])
    return session.scalar(select(Subscription.id).where(
        Subscription.project_id == req.project_id, Subscription.category == "signoff",
        Subscription.recipient_key.in_(keys), Subscription.subscribed.is_(False))) is not None


def _hold(session: Session, runtime: Runtime, req: SignoffRequest, now: datetime,
          report: ReminderReport) -> bool:
    """Whether this reminder may not go now, counting why."""
    if suppression_of(session, req.recipient_email) is not None:
        report.count(report.skipped, "suppressed")
        return True
    if _unsubscribed(session, req):
        report.count(report.skipped, "unsubscribed")
        return True
    wait = delivery_wait(runtime.db, req.project_id, req.recipient_email, now)
    if wait is not None:
        report.count(report.deferred, wait[0])
        return True
    return False


def send_reminders(runtime: Runtime, now: datetime | None = None) -> ReminderReport:
    """Remind every signer whose reminder is due and may go now; return what was sent, deferred, skipped."""
    now = now or utcnow()
    report = ReminderReport()
    with runtime.db.service_session() as session:
        due = [req for req, days in _open_requests(session, now) if is_due(req, days, now)]
        waiting = [req.id for req in due if not _hold(session, runtime, req, now, report)]
    for request_id in waiting:
        if _remind(runtime, request_id, now):
            report.sent.append(request_id)
    return report


def _remind(runtime: Runtime, request_id: uuid.UUID, now: datetime) -> bool:
    """Claim one reminder (the count moves only if no one else moved it) and queue its mail."""
    token = new_token()
    with runtime.db.service_transaction() as session:
        req = session.get(SignoffRequest, request_id)
        if req is None:
            return False
        won = session.execute(
            update(SignoffRequest)
            .where(SignoffRequest.id == request_id, SignoffRequest.status == "pending",
                   SignoffRequest.expires_at > now, SignoffRequest.reminder_count == req.reminder_count)
            .values(reminder_count=SignoffRequest.reminder_count + 1, reminded_at=now)
            .returning(SignoffRequest.reminder_count)
            .execution_options(synchronize_session=False)).first()
        if won is None:
            return False
        session.add(SignoffReminderLink(org_id=req.org_id, project_id=req.project_id, request_id=req.id,
                                        token_hash=hash_token(token), created_at=now))
        mail = _reminder_mail(session, runtime, req, token)
        runtime.mailer.queue(session, mail)
        audit(session, Actor(org_id=req.org_id, project_id=req.project_id, label="scheduler"),
              "signoff.reminded", "signoff_request", req.id, recipient=req.recipient_email, number=won[0])
    return True


def _people(session: Session, req: SignoffRequest) -> tuple[User | None, Project]:
    requester = session.get(User, req.created_by) if req.created_by else None
    project = session.get(Project, req.project_id)
    assert project is not None
    return requester, project


def _reminder_mail(session: Session, runtime: Runtime, req: SignoffRequest, token: str) -> Mail:
    requester, project = _people(session, req)
    stage = session.get(Stage, req.stage_id)
    assert stage is not None
    brand = brand_of(session, req.org_id)
    scope = trusted_scope(session, req.project_id, purpose="signoff-reminder", org_id=req.org_id)
    assert scope is not None
    subscription = ensure_subscription(session, scope, Recipient.outside(normalise_address(req.recipient_email),
                                                                         req.recipient_name), "signoff")
    opt_out = unsubscribe_url(runtime.settings.public_url, subscription.token)
    context = {"org": brand.name, "recipient_name": req.recipient_name,
               "requester": (requester.name or requester.email) if requester else "The project team",
               "stage_title": stage.title, "project_name": project.name, "sent_at": req.created_at,
               "expires_at": req.expires_at, "link": signoff_link(runtime.settings, token),
               "unsubscribe_url": opt_out}
    return Mail(to=req.recipient_email, subject=f"Reminder: sign-off of {stage.title} ({project.name})",
                text=render("reminder_email.txt", **context), html=render("reminder_email.html", **context),
                kind="signoff_reminder", org_id=req.org_id, project_id=req.project_id, sender_name=brand.name,
                reply_to=requester.email if requester and requester.email else None, unsubscribe_url=opt_out)


# --- expiry notices ---------------------------------------------------------------------------

def notify_expired(runtime: Runtime, now: datetime | None = None) -> int:
    """Tell the requester and the stage owner, once, of each link that expired unanswered; return how many."""
    now = now or utcnow()
    with runtime.db.service_session() as session:
        ids = list(session.scalars(
            select(SignoffRequest.id)
            .join(Project, Project.id == SignoffRequest.project_id)
            .where(SignoffRequest.status == "expired", SignoffRequest.channel == "external",
                   SignoffRequest.expiry_notified_at.is_(None), SignoffRequest.expires_at > now - NOTICE_HORIZON,
                   Project.archived_at.is_(None))))
    return sum(1 for request_id in ids if _notify_one(runtime, request_id, now))


def _notify_one(runtime: Runtime, request_id: uuid.UUID, now: datetime) -> bool:
    with runtime.db.service_transaction() as session:
        won = session.execute(
            update(SignoffRequest)
            .where(SignoffRequest.id == request_id, SignoffRequest.expiry_notified_at.is_(None))
            .values(expiry_notified_at=now)
            .returning(SignoffRequest.id)
            .execution_options(synchronize_session=False)).first()
        req = session.get(SignoffRequest, request_id)
        if won is None or req is None:
            return False
        mails = _expiry_mails(session, runtime, req)
        for mail in mails:
            runtime.mailer.queue(session, mail)
        audit(session, Actor(org_id=req.org_id, project_id=req.project_id, label="scheduler"),
              "signoff.expiry_notified", "signoff_request", req.id, recipients=[m.to for m in mails])
    return True


def _expiry_mails(session: Session, runtime: Runtime, req: SignoffRequest) -> list[Mail]:
    project = _people(session, req)[1]
    stage = session.get(Stage, req.stage_id)
    assert stage is not None
    brand = brand_of(session, req.org_id)
    mails = []
    for user in team_of(session, stage, req):
        assert user.email
        context = {"org": brand.name, "recipient": user.name or user.email, "stage_title": stage.title,
                   "project_name": project.name, "expires_at": req.expires_at, "sent_at": req.created_at,
                   "signer": req.recipient_name or req.recipient_email, "reminders": req.reminder_count,
                   "opens": req.open_count, "stage_link": stage_link(runtime.settings, stage)}
        mails.append(Mail(to=user.email, subject=f"Sign-off link expired: {stage.title} ({project.name})",
                          text=render("expiry_email.txt", **context), html=render("expiry_email.html", **context),
                          kind="signoff_expired", org_id=req.org_id, project_id=req.project_id,
                          sender_name=brand.name, reply_to=req.recipient_email))
    return mails
