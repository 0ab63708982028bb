"""The digest tick: plan due windows, claim sends, defer for quiet hours and caps, deliver.

Idempotency is the UNIQUE (project, recipient, ISO week) key of `digest_sends`: planning
inserts with ON CONFLICT DO NOTHING, and a send is claimed by one conditional UPDATE,
so overlapping ticks, restarts and several workers mail each recipient once a week.
Each write runs in its own short transaction that starts with the write, which is
what lets concurrent SQLite writers wait for each other instead of failing.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from kap.comms import schedule
from kap.comms.digest import Period, Recipient, SectionCache, build_digest
from kap.comms.models import CommsSettings, DigestSend
from kap.comms.schedule import Rules
from kap.comms.service import digest_recipients, ensure_subscription, rules_of, unsubscribe_url
from kap.core.db import Database, new_id, utcnow
from kap.core.errors import NotFound
from kap.core.mail import Mail, SendResult
from kap.core.models import EmailLog, Project, ProjectMember
from kap.core.runtime import Runtime
from kap.core.scope import live_project_ids, trusted_scope

log = logging.getLogger("kap.comms")

CLAIM_STALE_AFTER = timedelta(minutes=30)
CLAIM_BATCH = 500
TICK_BUDGET = timedelta(minutes=4)  # below the 5-minute period, so passes rarely overlap
DELIVERED = ("sent", "saved", "queued", "delivered")
Dispatch = Callable[[uuid.UUID], object]
# The sends of one window share their project's sections (built once per view, not per recipient).
SECTIONS = SectionCache(ttl_seconds=600)


@dataclass
class TickReport:
    planned: int = 0
    dispatched: list[uuid.UUID] = field(default_factory=list)
    deferred: dict[str, int] = field(default_factory=dict)


class SendFailed(Exception):
    """A digest could not be handed to the mail backend; the job retries."""


def insert_ignore(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> int:
    """Insert rows, skipping any that hit a unique constraint; the count is exact for one row."""
    if not rows:
        return 0
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    if len(rows) == 1:  # RETURNING tells reliably whether the row went in (rowcount may be -1)
        stmt = insert(table).values(**rows[0]).on_conflict_do_nothing().returning(*table.primary_key.columns)
        return len(conn.execute(stmt).all())
    conn.execute(insert(table).on_conflict_do_nothing(), rows)
    return len(rows)


# --- planning ---------------------------------------------------------------------------------

Scope = Collection[uuid.UUID] | None


def _projects(db: Database, scope: Scope) -> list[tuple[uuid.UUID, uuid.UUID, datetime, CommsSettings | None]]:
    stmt = (select(Project.id, Project.org_id, Project.created_at, CommsSettings)
            .outerjoin(CommsSettings, CommsSettings.project_id == Project.id).where(Project.archived_at.is_(None)))
    if scope is not None:
        stmt = stmt.where(Project.id.in_(list(scope)))
    with db.service_session() as session:
        return [(pid, org, created, settings) for pid, org, created, settings in session.execute(stmt).all()]


def plan_due_windows(db: Database, now: datetime, scope: Scope = None) -> int:
    """Create the week's send rows for every project whose digest window has begun."""
    planned = 0
    for project_id, org_id, created_at, settings in _projects(db, scope):
        rules = rules_of(settings)
        if not rules.digest_enabled:
            continue
        window = schedule.window_at_or_before(now, rules)
        if window < created_at or (settings is not None and settings.planned_window == window):
            continue
        planned += plan_project(db, org_id, project_id, rules, window)
    return planned


def plan_project(db: Database, org_id: uuid.UUID, project_id: uuid.UUID, rules: Rules, window: datetime) -> int:
    """Insert one due send per recipient for the window's week, then mark the window planned."""
    with db.service_session() as session:
        scope = trusted_scope(session, project_id, purpose="digest-planning", org_id=org_id)
        assert scope is not None
        recipients = digest_recipients(session, scope)
    week, stamp = schedule.window_week(window, rules), utcnow()
    rows = [{"id": new_id(), "org_id": org_id, "project_id": project_id, "recipient_key": r.key,
             "email": r.email, "iso_week": week, "window_start": window, "status": "due", "deferrals": 0,
             "attempts": 0, "created_at": stamp, "updated_at": stamp} for r in recipients]
    with db.service_engine.begin() as conn:
        insert_ignore(conn, DigestSend.__table__, rows)  # type: ignore[arg-type]
    _mark_planned(db, org_id, project_id, rules, window)
    return len(rows)


def _mark_planned(db: Database, org_id: uuid.UUID, project_id: uuid.UUID, rules: Rules, window: datetime) -> None:
    stamp = utcnow()
    with db.service_engine.begin() as conn:
        done = conn.execute(update(CommsSettings).where(CommsSettings.project_id == project_id)
                            .values(planned_window=window, updated_at=stamp)).rowcount
        if not done:
            insert_ignore(conn, CommsSettings.__table__, [{  # type: ignore[arg-type]
                "id": new_id(), "org_id": org_id, "project_id": project_id, **vars(rules),
                "planned_window": window, "created_at": stamp, "updated_at": stamp}])


# --- claiming and gating ----------------------------------------------------------------------

def _ready(now: datetime) -> Any:
    waiting = and_(DigestSend.status.in_(("due", "deferred")),
                   or_(DigestSend.not_before.is_(None), DigestSend.not_before <= now))
    stale = and_(DigestSend.status == "sending", DigestSend.claimed_at < now - CLAIM_STALE_AFTER)
    return or_(waiting, stale)


def _candidates(db: Database, now: datetime, scope: Scope) -> list[uuid.UUID]:
    stmt = (select(DigestSend.id).where(_ready(now), DigestSend.project_id.in_(live_project_ids()))
            .order_by(DigestSend.created_at, DigestSend.id).limit(CLAIM_BATCH))
    if scope is not None:
        stmt = stmt.where(DigestSend.project_id.in_(list(scope)))
    with db.service_session() as session:
        return list(session.scalars(stmt))


def claim(db: Database, ids: list[uuid.UUID], now: datetime) -> list[DigestSend]:
    """Take ready sends for this worker with one conditional UPDATE; rows another worker took are skipped.

    The readiness test is repeated in the UPDATE, so a row claimed (or deferred again) by a
    concurrent worker no longer matches once its lock is released.
    """
    token = uuid.uuid4().hex
    with db.service_engine.begin() as conn:
        conn.execute(update(DigestSend).where(DigestSend.id.in_(ids), _ready(now))
                     .values(status="sending", claimed_at=now, claim_token=token, updated_at=utcnow()))
    with db.service_session() as session:
        return list(session.scalars(select(DigestSend).where(DigestSend.claim_token == token)
                                    .order_by(DigestSend.project_id, DigestSend.email)))


def sent_today(db: Database, project_id: uuid.UUID, now: datetime, rules: Rules) -> Counter[str]:
    """How many messages this project has sent each recipient on the project's local day."""
    start, end = schedule.local_day_bounds(now, rules)
    address = func.lower(EmailLog.recipient)
    with db.service_session() as session:
        rows = session.execute(select(address, func.count()).where(
            EmailLog.project_id == project_id, EmailLog.status.in_(DELIVERED), EmailLog.created_at >= start,
            EmailLog.created_at < end).group_by(address)).all()
    return Counter({email: int(n) for email, n in rows})


def gate(db: Database, project_id: uuid.UUID, sends: list[DigestSend], now: datetime,
         rules: Rules) -> dict[uuid.UUID, tuple[str, datetime]]:
    """Which of a project's claimed sends must wait, why and until when (the rest may go now)."""
    if schedule.in_quiet_hours(now, rules):
        until = schedule.quiet_hours_end(now, rules)
        return {send.id: ("quiet_hours", until) for send in sends}
    counts = sent_today(db, project_id, now, rules)
    until = schedule.next_open_time(now, rules, cap_reached=True)
    return {send.id: ("daily_cap", until) for send in sends if counts[send.email.lower()] >= rules.daily_cap}


def delivery_wait(db: Database, project_id: uuid.UUID, email: str, now: datetime | None = None) -> \
        tuple[str, datetime] | None:
    """Whether a project message to `email` must wait (quiet hours, daily cap), why and until when."""
    now = now or utcnow()
    rules = _rules(db, {project_id})[project_id]
    if schedule.in_quiet_hours(now, rules):
        return "quiet_hours", schedule.quiet_hours_end(now, rules)
    if sent_today(db, project_id, now, rules)[email.lower()] >= rules.daily_cap:
        return "daily_cap", schedule.next_open_time(now, rules, cap_reached=True)
    return None


def defer(db: Database, ids: list[uuid.UUID], reason: str, until: datetime) -> None:
    """Put claimed sends back to wait, recording why (deferred, never dropped)."""
    with db.service_engine.begin() as conn:
        conn.execute(update(DigestSend).where(DigestSend.id.in_(ids), DigestSend.status == "sending")
                     .values(status="deferred", defer_reason=reason, not_before=until, claim_token=None,
                             deferrals=DigestSend.deferrals + 1, updated_at=utcnow()))
    log.info("%d digests deferred until %s (%s)", len(ids), until.isoformat(), reason)


def _load(db: Database, send_id: uuid.UUID) -> DigestSend | None:
    with db.service_session() as session:
        return session.get(DigestSend, send_id)


def _rules(db: Database, project_ids: set[uuid.UUID]) -> dict[uuid.UUID, Rules]:
    with db.service_session() as session:
        rows = session.scalars(select(CommsSettings).where(CommsSettings.project_id.in_(project_ids))).all()
    found = {row.project_id: rules_of(row) for row in rows}
    return {pid: found.get(pid, Rules()) for pid in project_ids}


def _route(db: Database, claimed: list[DigestSend], now: datetime, dispatch: Dispatch, report: TickReport) -> None:
    """Defer what must wait (quiet hours, caps), grouped by reason and time; dispatch the rest."""
    by_project: dict[uuid.UUID, list[DigestSend]] = {}
    for send in claimed:
        by_project.setdefault(send.project_id, []).append(send)
    rules = _rules(db, set(by_project))
    for project_id, project_sends in by_project.items():
        waits = gate(db, project_id, project_sends, now, rules[project_id])
        groups: dict[tuple[str, datetime], list[uuid.UUID]] = {}
        for send_id, wait in waits.items():
            groups.setdefault(wait, []).append(send_id)
        for (reason, until), ids in groups.items():
            defer(db, ids, reason, until)
            report.deferred[reason] = report.deferred.get(reason, 0) + len(ids)
        for send in project_sends:
            if send.id not in waits:
                dispatch(send.id)
                report.dispatched.append(send.id)


def claim_and_gate(db: Database, now: datetime, dispatch: Dispatch, report: TickReport,
                   scope: Scope = None) -> None:
    """Claim ready sends batch after batch, then defer them or hand them to `dispatch`."""
    deadline = time.monotonic() + TICK_BUDGET.total_seconds()
    while time.monotonic() < deadline:
        ids = _candidates(db, now, scope)
        claimed = claim(db, ids, now) if ids else []
        _route(db, claimed, now, dispatch, report)
        if len(ids) < CLAIM_BATCH or not claimed:
            return


def digest_tick(runtime: Runtime, now: datetime | None = None, *, dispatch: Dispatch | None = None,
                projects: Scope = None) -> TickReport:
    """One scheduler pass: plan windows that have begun, then send or defer what is ready.

    `dispatch` delivers a claimed send (by default: queue the retried send job);
    `projects` limits the pass to some projects (every project by default).
    """
    now = now or utcnow()
    if dispatch is None:
        from kap.comms.jobs import enqueue_send

        dispatch = enqueue_send
    report = TickReport(planned=plan_due_windows(runtime.db, now, projects))
    claim_and_gate(runtime.db, now, dispatch, report, projects)
    return report


# --- delivery ---------------------------------------------------------------------------------

def recipient_of(send: DigestSend) -> Recipient:
    kind, _, value = send.recipient_key.partition(":")
    if kind == "user":
        return Recipient.member(uuid.UUID(value), send.email)
    return Recipient.outside(send.email)


def _still_member(session: Session, send: DigestSend, recipient: Recipient) -> bool:
    return session.scalar(select(ProjectMember.id).where(ProjectMember.project_id == send.project_id,
                                                         ProjectMember.user_id == recipient.user_id)) is not None


def _compose(runtime: Runtime, send: DigestSend, recipient: Recipient) -> Mail:
    db, base = runtime.db, runtime.settings.public_url
    with db.service_transaction() as session:
        if recipient.user_id is not None and not _still_member(session, send, recipient):
            raise NotFound("the recipient left the project")
        scope = trusted_scope(session, send.project_id, purpose="digest-send", org_id=send.org_id)
        assert scope is not None
        token = ensure_subscription(session, scope, recipient, "digest").token
    link = unsubscribe_url(base, token)
    period = Period(start=send.window_start - timedelta(days=7), end=send.window_start)
    # Members read as themselves (row-level security on PostgreSQL); externals through the
    # service engine, where the builder itself keeps to shareable documents.
    session = db.app_session(recipient.user_id) if recipient.user_id else db.service_session()
    with session:
        digest = build_digest(session, scope, period, recipient, base_url=base, unsubscribe_url=link,
                              cache=SECTIONS)
    return Mail(to=send.email, subject=digest.subject, text=digest.text, html=digest.html, kind="digest",
                org_id=send.org_id, project_id=send.project_id, unsubscribe_url=link, sender_name=digest.org)


def finish(db: Database, send_id: uuid.UUID, status: str, result: SendResult | None = None,
           error: str | None = None) -> None:
    """Record the outcome of a claimed send."""
    values: dict[str, Any] = {"status": status, "updated_at": utcnow(), "attempts": DigestSend.attempts + 1,
                              "error": error or (result.error if result else None)}
    if result is not None:
        values["email_log_id"] = result.log_id
    if status == "sent":
        values["sent_at"] = utcnow()
    with db.service_engine.begin() as conn:
        conn.execute(update(DigestSend).where(DigestSend.id == send_id, DigestSend.status == "sending")
                     .values(**values))


def deliver(runtime: Runtime, send_id: uuid.UUID) -> str:
    """Build and send one claimed digest; raise SendFailed so the job retries a failed hand-off."""
    send = _load(runtime.db, send_id)
    if send is None or send.status != "sending":
        return send.status if send else "missing"
    recipient = recipient_of(send)
    try:
        mail = _compose(runtime, send, recipient)
    except NotFound:
        finish(runtime.db, send_id, "failed", error="the recipient no longer reaches the project")
        return "failed"
    result = runtime.mailer.send(mail)
    if result.status == "failed":
        with runtime.db.service_engine.begin() as conn:
            conn.execute(update(DigestSend).where(DigestSend.id == send_id).values(
                attempts=DigestSend.attempts + 1, error=result.error, claimed_at=utcnow()))
        raise SendFailed(result.error or "send failed")
    status = "suppressed" if result.status == "suppressed" else "sent"
    finish(runtime.db, send_id, status, result)
    return status


def give_up(db: Database, send_id: uuid.UUID, error: str) -> None:
    """Mark a send failed for good once its retries are spent."""
    finish(db, send_id, "failed", error=error[:500])
