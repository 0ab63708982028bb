"""Sign-off requests: issue, resend and revoke links, internal decisions, expiry.

Every mail is queued in the caller's transaction and goes out after it commits, so a
refused or rolled-back request never leaves anyone holding a link to a row that does
not exist; what the mailer did is recorded on the request afterwards.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kap.core.branding import brand_of
from kap.core.db import Database, new_id, utcnow
from kap.core.deps import ProjectContext
from kap.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from kap.core.mail import REF_HEADER, Mailer, SendResult, follow_up
from kap.core.models import ProjectMember, User
from kap.core.permissions import Action
from kap.core.scope import live_project_ids
from kap.core.security import hash_token, new_token
from kap.core.settings import Settings
from kap.stages.emails import invitation
from kap.stages.models import SignoffRequest, Stage, StageSigner
from kap.stages.records import (
    Actor,
    actor_of,
    audit,
    move_stage,
    request_read,
    revoke_open_requests,
    snapshot,
    stage_artifacts,
)
from kap.stages.revisions import content_digest, content_of, seal
from kap.stages.schemas import MAX_EXPIRY_HOURS, InternalDecisionIn, SignerRead, SignoffRequestRead
from kap.stages.service import editable_stage, find_stage

log = logging.getLogger("kap.stages")


class IssuedRequest(NamedTuple):
    """A new sign-off request, the secret link (shown once) and what the mailer did."""

    request: SignoffRequestRead
    token_link: str
    email: dict[str, Any]


def signoff_link(settings: Settings, token: str) -> str:
    """The external page address for a token."""
    return f"{settings.public_url}/signoff/{token}"


def find_request(ctx: ProjectContext, stage: Stage, request_id: uuid.UUID) -> SignoffRequest:
    """A request of this stage in the caller's project, or the one 404."""
    req = ctx.session.scalar(select(SignoffRequest).where(
        SignoffRequest.id == request_id, SignoffRequest.stage_id == stage.id,
        SignoffRequest.project_id == ctx.project_id).execution_options(populate_existing=True))
    if req is None:
        raise NotFound("sign-off request not found", code="signoff_request_not_found")
    return req


def list_requests(ctx: ProjectContext, stage_id: uuid.UUID) -> list[SignoffRequestRead]:
    """Every sign-off request of a stage, newest first (tokens are never shown)."""
    stage = find_stage(ctx, stage_id)
    rows = ctx.session.scalars(select(SignoffRequest).where(
        SignoffRequest.stage_id == stage.id, SignoffRequest.project_id == ctx.project_id)
        .order_by(SignoffRequest.created_at.desc(), SignoffRequest.id))
    return [request_read(r) for r in rows]


def _open_request(session: Session, stage: Stage) -> SignoffRequest | None:
    return session.scalar(select(SignoffRequest).where(
        SignoffRequest.stage_id == stage.id, SignoffRequest.status == "pending")
        .execution_options(populate_existing=True))


def _expire_stale(session: Session, actor: Actor, stage: Stage) -> None:
    """Mark the stage's open link expired when its time is up, so a new one can be issued."""
    stale = _open_request(session, stage)
    if stale is not None and stale.expires_at <= utcnow():
        _expire(session, [stale.id], utcnow())
        # Whoever asks again already knows the link lapsed: no expiry notice for it.
        session.execute(update(SignoffRequest).where(SignoffRequest.id == stale.id)
                        .values(expiry_notified_at=utcnow()).execution_options(synchronize_session=False))
        move_stage(session, actor, stage, "in_progress", reason="sign-off link expired")


def _check_can_request(stage: Stage) -> None:
    if stage.status == "signed_off":
        raise Conflict("the stage is already signed off; reopen it before asking again", code="already_signed_off")


def _check_hours(hours: int) -> None:
    if not 1 <= hours <= MAX_EXPIRY_HOURS:
        raise ValidationFailed(f"expires_in_hours must be between 1 and {MAX_EXPIRY_HOURS}",
                               details={"field": "expires_in_hours"})


def request_signoff(ctx: ProjectContext, stage_id: uuid.UUID, email_to: str, name: str | None = None,
                    message: str | None = None, expires_in_hours: int = 72, *, mailer: Mailer,
                    settings: Settings) -> IssuedRequest:
    """Issue a single-use sign-off link for a stage, mail it, and put the stage in review."""
    stage = editable_stage(ctx, stage_id)
    _check_can_request(stage)
    _expire_stale(ctx.session, actor_of(ctx), stage)
    if _open_request(ctx.session, stage) is not None:
        raise Conflict("a sign-off link is already open for this stage: resend or revoke it",
                       code="signoff_pending")
    return _issue(ctx, stage, email_to=email_to.strip(), name=name, message=message, hours=expires_in_hours,
                  mailer=mailer, settings=settings)


def _issue(ctx: ProjectContext, stage: Stage, *, email_to: str, name: str | None, message: str | None,
           hours: int, mailer: Mailer, settings: Settings, replaces: SignoffRequest | None = None) -> IssuedRequest:
    _check_hours(hours)
    token, req_id, now = new_token(), new_id(), utcnow()
    link = signoff_link(settings, token)
    requester = ctx.session.get(User, ctx.user_id) if ctx.user_id else None
    requester_name = (requester.name or requester.email) if requester else None
    mail = invitation(to=email_to, recipient_name=name,
                      requester=requester_name or "The project team",  # a person's name, never a user id
                      project_name=ctx.project_name, stage=stage,
                      documents=stage_artifacts(ctx.session, ctx.scope, [stage.id])[stage.id],
                      message=message, link=link, expires_at=now + timedelta(hours=hours),
                      org=brand_of(ctx.session, ctx.org_id).name)
    mail.reply_to = requester.email if requester and requester.email else None
    actor = actor_of(ctx)
    if replaces is not None:
        revoke_open_requests(ctx.session, actor, stage, reason="resent", replaced_by=req_id)
        replaces.replaced_by_id = req_id
    req = _new_request(ctx, stage, req_id, hash_token(token), email_to, name, message, now, hours)
    audit(ctx.session, actor, "signoff.created", "signoff_request", req.id, stage_id=str(stage.id),
          stage_title=stage.title, recipient=email_to, expires_at=req.expires_at.isoformat(),
          replaces=str(replaces.id) if replaces else None)
    move_stage(ctx.session, actor, stage, "in_review", request_id=str(req.id))
    mail.headers[REF_HEADER] = str(req_id)  # a recovery pass that sends it after a crash records it the same way
    mailer.queue(ctx.session, mail, on_sent=lambda result: _record_sent(mailer.db, actor, req_id, result))
    ctx.session.flush()
    return IssuedRequest(request_read(req), link, {"status": "queued", "provider": None, "error": None})


def _new_request(ctx: ProjectContext, stage: Stage, req_id: uuid.UUID, token_hash: str, email_to: str,
                 name: str | None, message: str | None, now: datetime, hours: int) -> SignoffRequest:
    req = SignoffRequest(id=req_id, org_id=ctx.org_id, project_id=ctx.project_id, stage_id=stage.id,
                         channel="external", token_hash=token_hash, recipient_email=email_to,
                         recipient_name=name, message=message, status="pending", email_status="queued",
                         created_by=ctx.user_id, created_at=now, expires_at=now + timedelta(hours=hours),
                         open_count=0, snapshot={})
    ctx.session.add(req)
    try:
        ctx.session.flush()
    except IntegrityError as exc:  # a concurrent request won the one-open-link-per-stage index
        raise Conflict("a sign-off link is already open for this stage: resend or revoke it",
                       code="signoff_pending") from exc
    return req


def record_email(session: Session, actor: Actor, req: SignoffRequest, result: SendResult) -> None:
    """Keep what the mailer did on the request and in the audit log."""
    req.email_status = result.status
    audit(session, actor, "signoff.emailed", "signoff_request", req.id, status=result.status,
          provider=result.provider, error=result.error, email_log_id=str(result.log_id) if result.log_id else None)


def _record_sent(db: Database, actor: Actor, request_id: uuid.UUID, result: SendResult) -> None:
    with db.service_transaction() as session:
        req = session.get(SignoffRequest, request_id)
        if req is not None:
            record_email(session, actor, req, result)


@follow_up("signoff")
def _record_recovered(db: Database, ref: str, result: SendResult) -> None:
    """A link's mail that the recovery pass sent for a process that died: recorded as if sent live."""
    with db.service_transaction() as session:
        req = session.get(SignoffRequest, uuid.UUID(ref))
        if req is not None:
            record_email(session, Actor(org_id=req.org_id, project_id=req.project_id, label="scheduler"), req, result)


def revoke_request(ctx: ProjectContext, stage_id: uuid.UUID, request_id: uuid.UUID) -> SignoffRequestRead:
    """Withdraw an open link: it stops working at once."""
    stage = find_stage(ctx, stage_id)
    req = find_request(ctx, stage, request_id)
    if req.status != "pending" or not revoke_open_requests(ctx.session, actor_of(ctx), stage, reason="revoked"):
        raise Conflict(f"this request is {req.status}; only an open request can be revoked", code="not_pending")
    move_stage(ctx.session, actor_of(ctx), stage, "in_progress", reason="sign-off link revoked")
    ctx.session.flush()
    return request_read(find_request(ctx, stage, request_id))


def resend_request(ctx: ProjectContext, stage_id: uuid.UUID, request_id: uuid.UUID, *, mailer: Mailer,
                   settings: Settings, expires_in_hours: int | None = None) -> IssuedRequest:
    """Issue a fresh link to the same recipient; the old link stops working."""
    stage = editable_stage(ctx, stage_id)
    req = find_request(ctx, stage, request_id)
    if req.channel != "external" or req.status in ("approved", "rejected"):
        raise Conflict("this request was already decided", code="already_decided")
    if req.replaced_by_id is not None:
        raise Conflict("this request was already resent; resend the newest one", code="already_resent")
    _check_can_request(stage)
    open_req = _open_request(ctx.session, stage)
    if open_req is not None and open_req.id != req.id:
        raise Conflict("another sign-off link is open for this stage", code="signoff_pending")
    hours = expires_in_hours or max(1, round((req.expires_at - req.created_at).total_seconds() / 3600))
    issued = _issue(ctx, stage, email_to=req.recipient_email, name=req.recipient_name, message=req.message,
                    hours=hours, mailer=mailer, settings=settings, replaces=req)
    audit(ctx.session, actor_of(ctx), "signoff.resent", "signoff_request", req.id,
          new_request_id=str(issued.request.id))
    return issued


def _check_may_sign(ctx: ProjectContext) -> None:
    if ctx.may(Action.SIGNOFF_DECIDE_INTERNAL):
        return
    flagged = ctx.session.scalar(select(StageSigner.id).where(
        StageSigner.project_id == ctx.project_id, StageSigner.user_id == ctx.user_id))
    if flagged is None:
        raise Forbidden("recording a decision needs the admin role or the can_sign flag")


def decide_internal(ctx: ProjectContext, stage_id: uuid.UUID, body: InternalDecisionIn) -> SignoffRequestRead:
    """Record a decision in the app for a stage; any open link stops working."""
    stage = editable_stage(ctx, stage_id)
    _check_may_sign(ctx)
    status = "approved" if body.decision == "approve" else "rejected"
    now, actor = utcnow(), actor_of(ctx)
    won = ctx.session.execute(
        update(Stage).where(Stage.id == stage.id, Stage.status != "signed_off", Stage.deleted_at.is_(None))
        .values(status="signed_off" if status == "approved" else "rejected", updated_at=now)
        .returning(Stage.id).execution_options(synchronize_session=False)).first()
    if won is None:
        raise Conflict("the stage is already signed off", code="already_signed_off")
    revoke_open_requests(ctx.session, actor, stage, reason="decided in the app")
    user = ctx.session.get(User, ctx.user_id) if ctx.user_id else None
    email = (user.email if user else None) or ctx.identity.email or ctx.identity.label
    signer = body.name or (user.name if user else None) or email
    content = content_of(ctx.session, ctx.scope, stage)
    digest = content_digest(content)
    sealed = snapshot(ctx.session, ctx.scope, stage, ctx.project_name)
    req = SignoffRequest(org_id=ctx.org_id, project_id=ctx.project_id, stage_id=stage.id, channel="internal",
                         recipient_email=email, recipient_name=signer, status=status, created_by=ctx.user_id,
                         created_at=now, expires_at=now, decided_at=now, open_count=0, signer_name=signer,
                         signer_email=email, signer_user_id=ctx.user_id, note=body.note or None,
                         decided_ip=ctx.ip, decided_user_agent=(ctx.user_agent or "")[:400] or None,
                         snapshot={**sealed, "content_digest": digest},
                         content_digest=digest)
    ctx.session.add(req)
    ctx.session.flush()
    revision = seal(ctx.session, actor, stage, req, content) if status == "approved" else None
    audit(ctx.session, actor, "signoff.decided", "signoff_request", req.id, decision=status, channel="internal",
          signer_name=signer, signer_email=email, stage_id=str(stage.id), content_digest=digest,
          revision=revision.number if revision else None)
    move_stage(ctx.session, actor, stage, "signed_off" if status == "approved" else "rejected",
               request_id=str(req.id))
    ctx.session.flush()
    return request_read(req)


def list_signers(ctx: ProjectContext) -> list[SignerRead]:
    """Members allowed to record decisions in the app without the admin role."""
    rows = ctx.session.execute(select(StageSigner, User).join(User, User.id == StageSigner.user_id)
                               .where(StageSigner.project_id == ctx.project_id).order_by(StageSigner.created_at))
    return [SignerRead(user_id=u.id, email=u.email, name=u.name, created_at=s.created_at) for s, u in rows]


def set_signer(ctx: ProjectContext, user_id: uuid.UUID, allowed: bool) -> None:
    """Grant or withdraw a project member's can_sign flag."""
    member = ctx.session.scalar(select(ProjectMember.id).where(
        ProjectMember.project_id == ctx.project_id, ProjectMember.user_id == user_id))
    if member is None:
        raise NotFound("member not found")
    row = ctx.session.scalar(select(StageSigner).where(
        StageSigner.project_id == ctx.project_id, StageSigner.user_id == user_id))
    if allowed and row is None:
        ctx.session.add(StageSigner(org_id=ctx.org_id, project_id=ctx.project_id, user_id=user_id,
                                    created_by=ctx.user_id))
        audit(ctx.session, actor_of(ctx), "stage.signer_added", "user", user_id)
    elif not allowed and row is not None:
        ctx.session.delete(row)
        audit(ctx.session, actor_of(ctx), "stage.signer_removed", "user", user_id)
    ctx.session.flush()


def _expire(session: Session, ids: list[uuid.UUID], now: datetime) -> list[Any]:
    rows = session.execute(
        update(SignoffRequest)
        .where(SignoffRequest.id.in_(ids), SignoffRequest.status == "pending", SignoffRequest.expires_at <= now)
        .values(status="expired")
        .returning(SignoffRequest.id, SignoffRequest.org_id, SignoffRequest.project_id, SignoffRequest.stage_id,
                   SignoffRequest.recipient_email)
        .execution_options(synchronize_session=False)).all()
    for row in rows:
        actor = Actor(org_id=row.org_id, project_id=row.project_id, label="scheduler")
        audit(session, actor, "signoff.expired", "signoff_request", row.id, stage_id=str(row.stage_id),
              recipient=row.recipient_email)
    return list(rows)


def expire_overdue(db: Database, now: datetime | None = None) -> int:
    """Mark every overdue open request expired (with its audit event); return how many."""
    now = now or utcnow()
    with db.service_transaction() as session:
        ids = list(session.scalars(select(SignoffRequest.id).where(
            SignoffRequest.status == "pending", SignoffRequest.expires_at <= now,
            SignoffRequest.project_id.in_(live_project_ids()))))
        if not ids:
            return 0
        rows = _expire(session, ids, now)
        for row in rows:
            stage = session.get(Stage, row.stage_id)
            if stage is not None and stage.status == "in_review":
                actor = Actor(org_id=row.org_id, project_id=row.project_id, label="scheduler")
                move_stage(session, actor, stage, "in_progress", reason="sign-off link expired")
    return len(rows)
