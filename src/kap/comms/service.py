"""Comms rules: settings, subscriptions, recipients, previews, test sends and scheduler status.

Services never commit; the request (or the scheduler's transaction) does.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kap.backups.writer import backup_status
from kap.comms import schedule
from kap.comms.digest import Digest, Period, Recipient, build_digest
from kap.comms.models import CATEGORIES, CommsSettings, DigestSend, Subscription
from kap.comms.schedule import Rules
from kap.comms.schemas import (
    CommsSettingsRead,
    CommsSettingsUpdate,
    ExternalRead,
    ExternalRecipient,
    SubscriptionsRead,
    SubscriptionsUpdate,
)
from kap.core.audit import record_audit
from kap.core.db import utcnow
from kap.core.deps import ProjectContext
from kap.core.errors import Forbidden, NotFound, ValidationFailed
from kap.core.mail import Mail, MailSuppression, SendResult, normalise_address
from kap.core.models import AuditEvent, ProjectMember, User
from kap.core.permissions import Action
from kap.core.runtime import Runtime
from kap.core.scope import ProjectScope
from kap.core.security import new_token

TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,64}")
RULE_FIELDS = ("timezone", "quiet_start", "quiet_end", "daily_cap", "digest_weekday", "digest_hour",
               "digest_enabled")


# --- settings ---------------------------------------------------------------------------------

def rules_of(row: CommsSettings | None) -> Rules:
    """A settings row as scheduling rules (the defaults when the project has none)."""
    if row is None:
        return Rules()
    return Rules(**{name: getattr(row, name) for name in RULE_FIELDS})


def load_rules(session: Session, scope: ProjectScope) -> Rules:
    """The project's scheduling rules."""
    return rules_of(session.scalar(select(CommsSettings).where(CommsSettings.project_id == scope.project_id)))


def get_settings(ctx: ProjectContext) -> CommsSettingsRead:
    """The project's comms settings (defaults until a PM saves them)."""
    rules = load_rules(ctx.session, ctx.scope)
    return CommsSettingsRead(**{name: getattr(rules, name) for name in RULE_FIELDS})


def update_settings(ctx: ProjectContext, body: CommsSettingsUpdate) -> CommsSettingsRead:
    """Change the fields given; an empty quiet_start or quiet_end turns quiet hours off."""
    row = ctx.session.scalar(select(CommsSettings).where(CommsSettings.project_id == ctx.project_id))
    if row is None:
        row = CommsSettings(org_id=ctx.org_id, project_id=ctx.project_id, **vars(Rules()))
        ctx.session.add(row)
    changes = body.model_dump(exclude_unset=True)
    for name in ("daily_cap", "digest_weekday", "digest_hour", "digest_enabled", "timezone"):
        if name in changes and changes[name] is None:
            raise ValidationFailed(f"invalid value for {name}: may not be null",
                                   details={"fields": [{"field": name, "message": "may not be null"}]})
    old = {name: getattr(row, name) for name in changes}
    for name, value in changes.items():
        setattr(row, name, value)
    if "digest_weekday" in changes or "digest_hour" in changes or "timezone" in changes:
        row.planned_window = None
    ctx.audit("comms.settings_updated", "project", ctx.project_id, old=old, new=changes)
    ctx.session.flush()
    return get_settings(ctx)


# --- subscriptions ----------------------------------------------------------------------------

def member_key(user_id: uuid.UUID) -> str:
    return f"user:{user_id}"


def external_key(email: str) -> str:
    return f"email:{normalise_address(email)}"


def _rows(session: Session, scope: ProjectScope, key: str | None = None) -> list[Subscription]:
    stmt = select(Subscription).where(Subscription.project_id == scope.project_id)
    if key is not None:
        stmt = stmt.where(Subscription.recipient_key == key)
    return list(session.scalars(stmt.order_by(Subscription.recipient_key, Subscription.category)))


def ensure_subscription(session: Session, scope: ProjectScope, recipient: Recipient,
                        category: str, *, subscribed: bool = True) -> Subscription:
    """The subscription row of a recipient and category, created (subscribed) when missing."""
    org_id, project_id = scope.org_id, scope.project_id
    row = session.scalar(select(Subscription).where(
        Subscription.project_id == project_id, Subscription.recipient_key == recipient.key,
        Subscription.category == category))
    if row is None:
        row = Subscription(org_id=org_id, project_id=project_id, recipient_key=recipient.key,
                           user_id=recipient.user_id, email=None if recipient.user_id else recipient.email,
                           name=recipient.name, category=category, subscribed=subscribed, token=new_token())
        session.add(row)
        session.flush()
    return row


def _mine(ctx: ProjectContext) -> dict[str, bool]:
    assert ctx.user_id is not None
    chosen = {r.category: r.subscribed for r in _rows(ctx.session, ctx.scope, member_key(ctx.user_id))}
    return {category: chosen.get(category, True) for category in CATEGORIES}


def _externals(ctx: ProjectContext) -> list[ExternalRead]:
    rows = [r for r in _rows(ctx.session, ctx.scope) if r.user_id is None and r.email]
    by_email: dict[str, ExternalRead] = {}
    for row in rows:
        assert row.email is not None
        entry = by_email.setdefault(row.email, ExternalRead(email=row.email, name=row.name, categories={}))
        entry.categories[row.category] = row.subscribed
    return list(by_email.values())


def get_subscriptions(ctx: ProjectContext, suppressed: dict[str, str] | None = None) -> SubscriptionsRead:
    """The caller's own categories and, for pm and above, the external recipients."""
    if not ctx.may(Action.COMMS_MANAGE):
        return SubscriptionsRead(mine=_mine(ctx))
    externals = _externals(ctx)
    for entry in externals:
        entry.suppressed = (suppressed or {}).get(entry.email)
    return SubscriptionsRead(mine=_mine(ctx), external=externals)


def update_subscriptions(ctx: ProjectContext, body: SubscriptionsUpdate) -> None:
    """Set the caller's own categories; pm and above may also replace the external recipients."""
    if body.external is not None and not ctx.may(Action.COMMS_MANAGE):
        raise Forbidden("'comms.manage' needs the pm role or higher to manage external recipients")
    if body.mine:
        _set_mine(ctx, {str(k): v for k, v in body.mine.items()})
    if body.external is not None:
        _set_externals(ctx, body.external)
    ctx.session.flush()


def _set_mine(ctx: ProjectContext, choices: Mapping[str, bool]) -> None:
    assert ctx.user_id is not None
    user = ctx.session.get(User, ctx.user_id)
    me = Recipient.member(ctx.user_id, (user.email if user else None) or "", user.name if user else None)
    for category, subscribed in choices.items():
        row = ensure_subscription(ctx.session, ctx.scope, me, category, subscribed=subscribed)
        if row.subscribed != subscribed:
            row.subscribed = subscribed
            row.unsubscribed_at = None if subscribed else utcnow()
    ctx.audit("comms.subscriptions_changed", "user", ctx.user_id, choices=choices)


def _set_externals(ctx: ProjectContext, wanted: list[ExternalRecipient]) -> None:
    existing = [r for r in _rows(ctx.session, ctx.scope) if r.user_id is None]
    keep: set[tuple[str, str]] = set()
    for entry in wanted:
        recipient = Recipient.outside(normalise_address(str(entry.email)), entry.name)
        for category in entry.categories:
            row = ensure_subscription(ctx.session, ctx.scope, recipient, category)
            row.name = entry.name
            keep.add((recipient.key, category))
    removed = [r for r in existing if (r.recipient_key, r.category) not in keep]
    for row in removed:
        ctx.session.delete(row)
    ctx.audit("comms.external_recipients_set", "project", ctx.project_id,
           emails=sorted({normalise_address(str(e.email)) for e in wanted}),
           removed=sorted({r.email or "" for r in removed}))


def suppressed_addresses(session: Session, emails: list[str]) -> dict[str, str]:
    """Which of these addresses are on the suppression list, and why (a trusted read)."""
    if not emails:
        return {}
    rows = session.execute(select(MailSuppression.email, MailSuppression.reason)
                           .where(MailSuppression.email.in_(emails))).all()
    return {email: reason for email, reason in rows}


def digest_recipients(session: Session, scope: ProjectScope) -> list[Recipient]:
    """Members with an email who have not opted out, plus subscribed external recipients."""
    project_id = scope.project_id
    rows = _rows(session, scope)
    opted_out = {r.recipient_key for r in rows if r.category == "digest" and not r.subscribed}
    members = session.execute(
        select(User.id, User.email, User.name).join(ProjectMember, ProjectMember.user_id == User.id)
        .where(ProjectMember.project_id == project_id, User.email.is_not(None)).order_by(User.id)).all()
    out = [Recipient.member(uid, email or "", name) for uid, email, name in members
           if member_key(uid) not in opted_out]
    out += [Recipient.outside(r.email, r.name) for r in rows
            if r.user_id is None and r.email and r.category == "digest" and r.subscribed]
    return out


# --- unsubscribe ------------------------------------------------------------------------------

def subscription_by_token(session: Session, token: str) -> Subscription:
    """The subscription an unsubscribe token names, or the one 404."""
    valid = TOKEN_SHAPE.fullmatch(token) is not None
    row = session.scalar(select(Subscription).where(Subscription.token == token)) if valid else None
    if row is None:
        raise NotFound("this unsubscribe link is not valid", code="unknown_token")
    return row


def unsubscribe(session: Session, token: str, *, ip: str | None = None, user_agent: str | None = None) -> \
        Subscription:
    """Turn one recipient's category off (idempotent) and record who asked."""
    row = subscription_by_token(session, token)
    if row.subscribed:
        row.subscribed = False
        row.unsubscribed_at = utcnow()
        record_audit(session, org_id=row.org_id, project_id=row.project_id, actor_id=row.user_id,
                     actor_label=row.email or row.recipient_key, action="comms.unsubscribed",
                     target_type="subscription", target_id=row.id,
                     details={"category": row.category, "recipient": row.recipient_key}, ip=ip,
                     user_agent=user_agent)
        session.flush()
    return row


def unsubscribe_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/unsubscribe/{token}"


# --- preview and test send --------------------------------------------------------------------

def caller_recipient(ctx: ProjectContext) -> Recipient:
    """The signed-in caller as a digest recipient."""
    assert ctx.user_id is not None
    user = ctx.session.get(User, ctx.user_id)
    return Recipient.member(ctx.user_id, (user.email if user else None) or ctx.identity.label,
                            user.name if user else None)


def last_week(now: datetime) -> Period:
    return Period(start=now - timedelta(days=7), end=now)


def preview(ctx: ProjectContext, *, base_url: str = "", now: datetime | None = None) -> Digest:
    """The digest the caller would get for the last seven days."""
    return build_digest(ctx.session, ctx.scope, last_week(now or utcnow()), caller_recipient(ctx),
                        base_url=base_url)


def _test_recipient(ctx: ProjectContext, to: str, test_email: str | None) -> Recipient:
    """Whose view a test send shows: the operator's test inbox and the caller see the caller's view,
    a member address that member's, anyone else the external (shareable only) view."""
    address = normalise_address(to)
    if test_email and address == normalise_address(test_email):
        return caller_recipient(ctx)
    member = ctx.session.execute(
        select(User.id, User.name).join(ProjectMember, ProjectMember.user_id == User.id)
        .where(ProjectMember.project_id == ctx.project_id, func.lower(User.email) == address)).first()
    if member is not None:
        return Recipient.member(member[0], address, member[1])
    return Recipient.outside(address)


def send_now(ctx: ProjectContext, runtime: Runtime, to: str | None) -> tuple[str, Digest, SendResult]:
    """Build the digest for `to` (default DIGEST_TEST_EMAIL) and send it straight away."""
    target = to or runtime.settings.digest_test_email
    if not target:
        raise ValidationFailed("give 'to' or set DIGEST_TEST_EMAIL", code="no_recipient",
                               details={"fields": [{"field": "to", "message": "required"}]})
    target = normalise_address(target)
    recipient = _test_recipient(ctx, target, runtime.settings.digest_test_email)
    digest = build_digest(ctx.session, ctx.scope, last_week(utcnow()), recipient,
                          base_url=runtime.settings.public_url)
    result = runtime.mailer.send(Mail(to=target, subject=f"[Test] {digest.subject}",
                                      text=digest.text, html=digest.html, kind="digest_test",
                                      org_id=ctx.org_id, project_id=ctx.project_id, sender_name=digest.org))
    ctx.audit("digest.test_sent", "email", result.log_id or "", to=target,
           status=result.status, view="external" if recipient.external else "member")
    ctx.session.flush()
    return target, digest, result


# --- scheduler status -------------------------------------------------------------------------

def _window(start: datetime, rules: Rules) -> dict[str, Any]:
    end = start + schedule.WINDOW_LENGTH
    return {"start": start.astimezone(rules.zone).isoformat(), "end": end.astimezone(rules.zone).isoformat(),
            "start_utc": start.isoformat(), "end_utc": end.isoformat(), "timezone": rules.timezone}


def _last_sent(session: Session, scope: ProjectScope) -> dict[str, Any] | None:
    project_id = scope.project_id
    last = session.execute(select(DigestSend.sent_at, DigestSend.iso_week).where(
        DigestSend.project_id == project_id, DigestSend.status == "sent")
        .order_by(DigestSend.sent_at.desc()).limit(1)).first()
    if last is None or last[0] is None:
        return None
    recipients = session.scalar(select(func.count()).select_from(DigestSend).where(
        DigestSend.project_id == project_id, DigestSend.status == "sent", DigestSend.iso_week == last[1]))
    return {"at": last[0].isoformat(), "iso_week": last[1], "recipients": int(recipients or 0)}


def _waiting(session: Session, scope: ProjectScope) -> dict[str, Any]:
    project_id = scope.project_id
    rows = session.execute(select(DigestSend.status, DigestSend.defer_reason, func.count(),
                                  func.min(DigestSend.not_before))
                           .where(DigestSend.project_id == project_id,
                                  DigestSend.status.in_(("due", "deferred", "sending")))
                           .group_by(DigestSend.status, DigestSend.defer_reason)).all()
    by_reason = {f"{status}:{reason}" if reason else status: int(n) for status, reason, n, _ in rows}
    earliest = min((nb for *_, nb in rows if nb is not None), default=None)
    return {"total": sum(by_reason.values()), "by_reason": by_reason,
            "next_attempt": earliest.isoformat() if earliest else None}


def scheduler_status(ctx: ProjectContext, *, now: datetime | None = None) -> dict[str, Any]:
    """When the last digest went out, when the next window is, and what waits."""
    now = now or utcnow()
    rules = load_rules(ctx.session, ctx.scope)
    return {
        "ok": True,
        "digest_enabled": rules.digest_enabled,
        "last_digest": _last_sent(ctx.session, ctx.scope),
        "next_window": _window(schedule.next_window_after(now, rules), rules) if rules.digest_enabled else None,
        "current_window": _window(schedule.window_at_or_before(now, rules), rules),
        "waiting": _waiting(ctx.session, ctx.scope),
        "quiet_now": schedule.in_quiet_hours(now, rules),
        "backups": backup_status(ctx.session, ctx.project_id, now),
    }


def bounce_flags(ctx: ProjectContext, limit: int = 20) -> list[dict[str, Any]]:
    """Recent bounces of external sign-off recipients, for the PM to act on."""
    rows = ctx.session.scalars(select(AuditEvent).where(
        AuditEvent.project_id == ctx.project_id, AuditEvent.action == "comms.signoff_recipient_bounced")
        .order_by(AuditEvent.created_at.desc()).limit(limit)).all()
    return [{"at": e.created_at.isoformat(), "email": e.details.get("email"), "reason": e.details.get("reason")}
            for e in rows]
