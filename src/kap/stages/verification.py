"""Optional signer verification: a 6-digit code mailed to the signer's address before a decision counts.

When the project requires it (`stage_settings.require_code`), the signer asks for a code on the
page; it is mailed to the address the link was sent to, lives 10 minutes and is spent by the
decision it confirms. Five wrong codes lock the request: the team has to send a new link.
Only a hash of the code is kept, keyed with the link's token, so the stored value is useless
without the link itself. A wrong try is counted in a transaction of its own, so the refusal
of the decision cannot roll the count back.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from kap.core.errors import KapError
from kap.core.mail import Mail, Mailer
from kap.stages.models import SignoffRequest
from kap.stages.records import Actor, audit
from kap.stages.render import render

CODE_TTL = timedelta(minutes=10)
MAX_TRIES = 5
RESEND_AFTER = timedelta(seconds=60)


class CodeRefused(KapError):
    """The decision's verification code is missing, wrong, expired, used or locked."""

    status, code = 422, "code_invalid"

    def __init__(self, message: str, *, code: str, status: int = 422, tries_left: int | None = None) -> None:
        super().__init__(message, code=code, status=status,
                         details={"tries_left": tries_left} if tries_left is not None else None)
        self.tries_left = tries_left


@dataclass(frozen=True)
class CodeState:
    """What the signer's page says about the code step."""

    required: bool
    sent: bool = False
    locked: bool = False
    expires_at: datetime | None = None
    tries_left: int = MAX_TRIES
    sent_to: str = ""


def masked(address: str) -> str:
    """An address as the page shows it: d•••@client.example.com."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}•••@{domain}" if domain else "your address"


def code_hash(token: str, code: str) -> str:
    """The stored form of a code: an HMAC keyed with the link's token."""
    return hmac.new(token.encode(), code.encode(), hashlib.sha256).hexdigest()


def state_of(req: SignoffRequest, required: bool, now: datetime) -> CodeState:
    """The code step of a request as the page shows it."""
    if not required:
        return CodeState(required=False)
    live = req.code_hash is not None and req.code_expires_at is not None and req.code_expires_at > now
    return CodeState(required=True, sent=live, locked=req.code_tries >= MAX_TRIES,
                     expires_at=req.code_expires_at if live else None,
                     tries_left=max(0, MAX_TRIES - req.code_tries), sent_to=masked(req.recipient_email))


def _locked() -> CodeRefused:
    return CodeRefused("too many wrong codes: this link is locked; ask the project team for a new one",
                       code="code_locked", status=429, tries_left=0)


def issue_code(session: Session, req: SignoffRequest, token: str, *, mailer: Mailer, actor: Actor,
               org: str, stage_title: str, project_name: str, now: datetime) -> CodeState:
    """Mail a fresh code to the request's address (the previous one stops working)."""
    if req.code_tries >= MAX_TRIES:
        raise _locked()
    if req.code_expires_at is not None and req.code_expires_at - CODE_TTL + RESEND_AFTER > now:
        raise CodeRefused("a code was sent less than a minute ago; check your inbox, or wait a minute",
                          code="code_recently_sent", status=429)
    code = f"{secrets.randbelow(10 ** 6):06d}"
    req.code_hash = code_hash(token, code)
    req.code_expires_at = now + CODE_TTL
    context = {"code": code, "org": org, "stage_title": stage_title, "project_name": project_name,
               "minutes": int(CODE_TTL.total_seconds() // 60), "expires_at": req.code_expires_at}
    mailer.queue(session, Mail(to=req.recipient_email, subject=f"Your code to sign off {stage_title}",
                               text=render("code_email.txt", **context), html=render("code_email.html", **context),
                               kind="signoff_code", org_id=req.org_id, project_id=req.project_id, sender_name=org))
    audit(session, actor, "signoff.code_sent", "signoff_request", req.id, recipient=req.recipient_email,
          expires_at=req.code_expires_at.isoformat())
    session.flush()
    return state_of(req, True, now)


def check_code(session: Session, req: SignoffRequest, token: str, code: str | None, now: datetime) -> str:
    """The stored hash the decision must spend; raise CodeRefused (a wrong try is counted) otherwise."""
    if req.code_tries >= MAX_TRIES:
        raise _locked()
    if not code:
        raise CodeRefused("this sign-off needs the 6-digit code mailed to the signer: ask for one "
                          "(POST /api/signoff/{token}/code) and send it as `code`", code="code_required")
    if req.code_hash is None or req.code_expires_at is None:
        raise CodeRefused("no code is waiting: ask for a new one", code="code_not_sent")
    if req.code_expires_at <= now:
        raise CodeRefused("this code has expired (codes last 10 minutes): ask for a new one", code="code_expired")
    expected = code_hash(token, code.strip())
    if not hmac.compare_digest(expected, req.code_hash):
        left = _count_wrong_try(session, req)
        if left <= 0:
            raise _locked()
        raise CodeRefused(f"this code is not right: {left} tr{'y' if left == 1 else 'ies'} left",
                          code="code_invalid", tries_left=left)
    return expected


def _count_wrong_try(session: Session, req: SignoffRequest) -> int:
    """Count a wrong code in a transaction of its own (the refusal rolls the request back); return tries left."""
    with Session(session.get_bind()) as own, own.begin():
        tries = own.execute(update(SignoffRequest).where(SignoffRequest.id == req.id)
                            .values(code_tries=SignoffRequest.code_tries + 1)
                            .returning(SignoffRequest.code_tries)).scalar_one()
        if tries >= MAX_TRIES:
            own.execute(update(SignoffRequest).where(SignoffRequest.id == req.id).values(code_hash=None))
    return MAX_TRIES - int(tries)
