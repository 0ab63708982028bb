"""Magic-link sign-in and invitations: single-use tokens, kept only as hashes.

A sign-in link lives 15 minutes; an invitation link (`purpose = 'invite'`) lives
`KAP_INVITE_DAYS` (default 7) and names who invited whom to which project. Both go
through the mail queue of the caller's transaction, so a rollback mails nothing.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from fastapi.responses import Response
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from kap.core.branding import brand_of
from kap.core.db import utcnow
from kap.core.errors import Gone
from kap.core.mail import Mail, Mailer
from kap.core.models import LoginToken, OrgMember, User, UserSession
from kap.core.security import CSRF_COOKIE, SESSION_COOKIE, hash_token, new_token
from kap.core.settings import Settings

LINK_TTL = timedelta(minutes=15)


@dataclass
class NewSession:
    token: str
    csrf_token: str
    max_age: int


def issue_login_token(session: Session, user_id: uuid.UUID, *, ttl: timedelta = LINK_TTL,
                      purpose: str = "login", invited_by: uuid.UUID | None = None,
                      project_id: uuid.UUID | None = None) -> str:
    """Create a magic-link token for a user and return the secret part."""
    token = new_token()
    session.add(LoginToken(user_id=user_id, token_hash=hash_token(token), expires_at=utcnow() + ttl,
                           purpose=purpose, invited_by=invited_by, invite_project_id=project_id))
    return token


def send_login_link(session: Session, mailer: Mailer, settings: Settings, user: User, *,
                    reason: str = "Sign in to Kap", mail_session: Session | None = None) -> None:
    """Queue a sign-in link to a user (sent after `mail_session`, default `session`, commits)."""
    assert user.email
    token = issue_login_token(session, user.id)
    link = f"{settings.public_url}/auth/magic/{token}"
    org = home_org(session, user.id)
    where = f"{org.name}'s workspace on Kap" if org else "Kap"
    text = (f"{reason}\n\nOpen this link within 15 minutes to sign in to {where} (it works once):\n{link}\n\n"
            f"If you did not ask for this, ignore this message.\n\n{org.name if org else 'Kap'}"
            f"{' via Kap' if org else ''}\n")
    mailer.queue(mail_session or session, Mail(to=user.email, subject=reason, text=text, kind="login",
                                               org_id=org.org_id if org else None,
                                               sender_name=org.name if org else None))


@dataclass(frozen=True)
class HomeOrg:
    org_id: uuid.UUID
    name: str


def home_org(session: Session, user_id: uuid.UUID) -> HomeOrg | None:
    """The org a sign-in mail speaks for: the one the user joined first (None without any)."""
    org_id = session.scalar(select(OrgMember.org_id).where(OrgMember.user_id == user_id)
                            .order_by(OrgMember.created_at, OrgMember.org_id).limit(1))
    return HomeOrg(org_id, brand_of(session, org_id).name) if org_id else None


@dataclass(frozen=True)
class Invitation:
    """Who invites whom to which project, and as what."""

    inviter: str
    inviter_email: str | None
    project_name: str
    project_id: uuid.UUID
    org_id: uuid.UUID
    org_brand: str
    role: str


def send_invitation(session: Session, mailer: Mailer, settings: Settings, user: User, invite: Invitation, *,
                    invited_by: uuid.UUID | None, mail_session: Session) -> None:
    """Queue an invitation link (valid KAP_INVITE_DAYS days) naming the inviter and the project."""
    assert user.email
    days = settings.kap_invite_days
    token = issue_login_token(session, user.id, ttl=timedelta(days=days), purpose="invite",
                              invited_by=invited_by, project_id=invite.project_id)
    link = f"{settings.public_url}/auth/magic/{token}"
    subject = f"{invite.inviter} invited you to {invite.project_name} on Kap"
    text = (f"{invite.inviter} invited you to the project {invite.project_name} ({invite.org_brand}) "
            f"as {invite.role}.\n\nOpen this link within {days} days to join (it works once):\n{link}\n\n"
            "If you were not expecting this, ignore this message.\n")
    mailer.queue(mail_session, Mail(to=user.email, subject=subject, text=text, kind="invitation",
                                    org_id=invite.org_id, project_id=invite.project_id,
                                    sender_name=invite.org_brand, reply_to=invite.inviter_email))


def consume_login_token(session: Session, token: str, session_days: int) -> tuple[uuid.UUID, NewSession]:
    """Spend a magic-link token once and open a session; raise Gone when it is used or expired."""
    now = utcnow()
    token_hash = hash_token(token)
    result = session.execute(
        update(LoginToken)
        .where(LoginToken.token_hash == token_hash, LoginToken.used_at.is_(None),
               LoginToken.expires_at > now)
        .values(used_at=now)
        .returning(LoginToken.user_id)
    ).first()
    if result is None:
        raise Gone("this sign-in link has expired or was already used", code="link_invalid")
    return result[0], open_session(session, result[0], session_days)


def open_session(session: Session, user_id: uuid.UUID, session_days: int) -> NewSession:
    """Create a cookie session for a user; only the token's hash is stored."""
    raw = new_token()
    csrf = secrets.token_urlsafe(24)
    max_age = session_days * 86400
    session.add(UserSession(user_id=user_id, token_hash=hash_token(raw), csrf_token=csrf,
                            expires_at=utcnow() + timedelta(seconds=max_age)))
    return NewSession(token=raw, csrf_token=csrf, max_age=max_age)


def set_session_cookies(response: Response, settings: Settings, new: NewSession) -> None:
    """Set the HttpOnly session cookie and the readable CSRF cookie (double submit)."""
    secure = settings.kap_env == "production" or settings.public_url.startswith("https")
    response.set_cookie(SESSION_COOKIE, new.token, max_age=new.max_age, httponly=True, samesite="lax",
                        secure=secure, path="/")
    response.set_cookie(CSRF_COOKIE, new.csrf_token, max_age=new.max_age, httponly=False, samesite="lax",
                        secure=secure, path="/")


def end_session(session: Session, raw_token: str) -> None:
    """Delete a session by its cookie value."""
    row = session.scalar(select(UserSession).where(UserSession.token_hash == hash_token(raw_token)))
    if row is not None:
        session.delete(row)
