"""The emailed link: the token alone authorises one decision on one request.

Opening the link never decides (mail scanners open links); only a POST does, through
one conditional UPDATE ("still pending, not expired, stage still there"), so a second
click, a replay or a concurrent POST finds nothing to update and is told it was decided.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from kap.core.branding import Brand, brand_of
from kap.core.db import utcnow
from kap.core.errors import Conflict, KapError, NotFound, ProjectArchived
from kap.core.mail import Mailer
from kap.core.models import Project, User
from kap.core.scope import ProjectScope, trusted_scope
from kap.core.security import hash_token
from kap.documents.models import Artifact
from kap.stages.models import SignoffReminderLink, SignoffRequest, Stage, StageArtifact
from kap.stages.previews import MAX_PREVIEW_PAGES, text_excerpt
from kap.stages.project_settings import requires_code
from kap.stages.records import LINK_INVALID, Actor, audit, move_stage, snapshot
from kap.stages.revisions import content_digest, content_of, seal
from kap.stages.schemas import DecisionIn
from kap.stages.verification import CodeRefused, CodeState, check_code, issue_code, state_of

MAX_TOKEN_LENGTH = 128
PAUSED = "This sign-off is paused while the project is archived."


class LinkInvalid(KapError):
    """Unknown, tampered (404), expired, revoked or withdrawn (410): one wording for all."""

    status, code = 410, "link_invalid"

    def default_message(self) -> str:
        return LINK_INVALID


@dataclass
class LinkView:
    """What the external page and the JSON variant show about a request."""

    request_id: uuid.UUID
    status: str
    project_name: str
    stage_title: str
    summary: str
    planned_start: date | str | None
    planned_end: date | str | None
    requester: str
    recipient_email: str
    recipient_name: str | None
    message: str | None
    expires_at: datetime
    documents: list[dict[str, Any]] = field(default_factory=list)
    decided_at: datetime | None = None
    signer_name: str | None = None
    content_digest: str | None = None
    brand: Brand = field(default_factory=lambda: Brand(name="Kap"))
    verification: CodeState = field(default_factory=lambda: CodeState(required=False))

    def as_json(self) -> dict[str, Any]:
        """The JSON shape for integrations."""
        return {"request_id": str(self.request_id), "status": self.status, "project": self.project_name,
                "stage": {"title": self.stage_title, "summary": self.summary,
                          "planned_start": _iso(self.planned_start), "planned_end": _iso(self.planned_end)},
                "requester": self.requester, "recipient_email": self.recipient_email,
                "message": self.message, "expires_at": self.expires_at.isoformat(),
                "documents": [{k: d.get(k) for k in ("artifact_id", "name", "version", "sha256", "size",
                                                      "media_type")} for d in self.documents],
                "decided_at": _iso(self.decided_at), "signer_name": self.signer_name,
                "content_digest": self.content_digest, "org": self.brand.name,
                "code": {"required": self.verification.required, "sent": self.verification.sent,
                         "locked": self.verification.locked, "expires_at": _iso(self.verification.expires_at),
                         "tries_left": self.verification.tries_left}}


class ContentChanged(Conflict):
    """The stage or its documents changed after the signer's page was shown: they must look again."""

    code = "content_changed"

    def __init__(self, view: LinkView) -> None:
        super().__init__("the stage or its documents changed since this page was opened; review it again")
        self.view = view


class LinkPaused(ProjectArchived):
    """The link's project is archived: nothing can be decided until it is unarchived; the link
    is kept as it was (token and expiry), so unarchiving makes it live again."""

    def __init__(self, view: LinkView) -> None:
        super().__init__(PAUSED)
        self.view = view


class AlreadyDecided(Conflict):
    code = "already_decided"

    def __init__(self, view: LinkView) -> None:
        super().__init__("this sign-off was already decided")
        self.view = view


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None and not isinstance(value, str) else value


def _token_hash(token: str) -> str:
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise LinkInvalid(status=404)
    return hash_token(token)


def _lookup(session: Session, token_hash: str) -> tuple[SignoffRequest, Stage, Project]:
    row = session.execute(
        select(SignoffRequest, Stage, Project)
        .join(Stage, Stage.id == SignoffRequest.stage_id)
        .join(Project, Project.id == SignoffRequest.project_id)
        .where(or_(SignoffRequest.token_hash == token_hash,
                   SignoffRequest.id == select(SignoffReminderLink.request_id)
                   .where(SignoffReminderLink.token_hash == token_hash).scalar_subquery()))
        .execution_options(populate_existing=True)
    ).first()
    if row is None:
        raise LinkInvalid(status=404)
    return row[0], row[1], row[2]


def _token_scope(session: Session, project: Project) -> ProjectScope:
    """The named service scope of a sign-off link's project: the token is the credential."""
    scope = trusted_scope(session, project.id, purpose="signoff-token", org_id=project.org_id)
    assert scope is not None  # the org is given, so a scope always comes back
    return scope


def _documents(session: Session, stage: Stage) -> list[dict[str, Any]]:
    """The attached documents as the signer sees them: what, which version, its hash, and its preview."""
    rows = session.scalars(select(Artifact).join(StageArtifact, StageArtifact.artifact_id == Artifact.id)
                           .where(StageArtifact.stage_id == stage.id, Artifact.project_id == stage.project_id)
                           .order_by(Artifact.name, Artifact.id))
    docs = []
    for art in rows:
        is_pdf = art.media_type == "application/pdf"
        docs.append({"artifact_id": str(art.id), "name": art.name, "version": art.version, "sha256": art.sha256,
                     "size": art.size, "media_type": art.media_type,
                     "pages": min(max(art.page_count, 1), MAX_PREVIEW_PAGES) if is_pdf else 0,
                     "page_count": art.page_count,
                     "excerpt": "" if is_pdf else text_excerpt(session, stage.project_id, art.id)})
    return docs


def _view(session: Session, req: SignoffRequest, stage: Stage, project: Project) -> LinkView:
    requester = session.get(User, req.created_by) if req.created_by else None
    scope = _token_scope(session, project)
    decided = req.status in ("approved", "rejected")
    title = stage.title
    if decided and req.snapshot:
        shot = req.snapshot
        docs, summary = shot.get("documents", []), shot["stage"].get("summary", "")
        title = shot["stage"].get("title", title)
        start, end = shot["stage"].get("planned_start"), shot["stage"].get("planned_end")
    else:
        docs = _documents(session, stage)
        summary, start, end = stage.summary, stage.planned_start, stage.planned_end
    return LinkView(request_id=req.id, status=req.status, project_name=project.name, stage_title=title,
                    summary=summary, planned_start=start, planned_end=end,
                    requester=(requester.name or requester.email or "") if requester else "the project team",
                    recipient_email=req.recipient_email, recipient_name=req.recipient_name, message=req.message,
                    expires_at=req.expires_at, documents=docs, decided_at=req.decided_at,
                    signer_name=req.signer_name,
                    content_digest=req.content_digest if decided else content_digest(content_of(session, scope, stage)),
                    brand=brand_of(session, req.org_id),
                    verification=state_of(req, not decided and requires_code(session, req), utcnow()))


def link_document(session: Session, token: str, artifact_id: uuid.UUID, *, ip: str | None = None,
                  user_agent: str | None = None, download: bool = False) -> Artifact:
    """A document attached to the stage of a usable link; any other id is the one 404."""
    req, stage, project = _lookup(session, _token_hash(token))
    if not _usable(req, stage, utcnow()):
        raise LinkInvalid()
    _check_live(session, req, stage, project)
    art = session.scalar(select(Artifact).join(StageArtifact, StageArtifact.artifact_id == Artifact.id).where(
        StageArtifact.stage_id == stage.id, Artifact.id == artifact_id, Artifact.project_id == stage.project_id))
    if art is None:
        raise NotFound("no such document on this sign-off", code="document_not_found")
    if download:
        audit(session, _signer(req, ip, user_agent), "signoff.document_downloaded", "signoff_request", req.id,
              artifact_id=str(art.id), name=art.name, version=art.version, sha256=art.sha256)
    return art


def _usable(req: SignoffRequest, stage: Stage, now: datetime) -> bool:
    return req.status == "pending" and req.expires_at > now and stage.deleted_at is None


def _check_live(session: Session, req: SignoffRequest, stage: Stage, project: Project) -> None:
    """Raise LinkPaused while the link's project is archived."""
    if project.archived_at is not None:
        raise LinkPaused(_view(session, req, stage, project))


def _signer(req: SignoffRequest, ip: str | None, user_agent: str | None) -> Actor:
    return Actor(org_id=req.org_id, project_id=req.project_id, label=f"link:{req.recipient_email}",
                 ip=ip, user_agent=user_agent)


def _code_to_spend(session: Session, req: SignoffRequest, stage: Stage, token: str, code: str | None,
                   now: datetime) -> str | None:
    """The code hash this decision spends when the project requires a code (None when it does not)."""
    if not _usable(req, stage, now) or not requires_code(session, req):
        return None
    return check_code(session, req, token, code, now)


def view_link(session: Session, token: str) -> LinkView:
    """What the token shows, without counting an open; raise LinkInvalid when it cannot be used."""
    req, stage, project = _lookup(session, _token_hash(token))
    if req.status not in ("approved", "rejected"):
        if not _usable(req, stage, utcnow()):
            raise LinkInvalid()
        _check_live(session, req, stage, project)
    return _view(session, req, stage, project)


def open_link(session: Session, token: str, *, ip: str | None, user_agent: str | None) -> LinkView:
    """Show a request to whoever holds its token; counts the open, decides nothing."""
    req, stage, project = _lookup(session, _token_hash(token))
    if req.status in ("approved", "rejected"):
        return _view(session, req, stage, project)
    now = utcnow()
    if not _usable(req, stage, now):
        raise LinkInvalid()
    _check_live(session, req, stage, project)
    view = _view(session, req, stage, project)
    session.execute(update(SignoffRequest).where(SignoffRequest.id == req.id, SignoffRequest.status == "pending")
                    .values(open_count=SignoffRequest.open_count + 1, content_digest=view.content_digest,
                            opened_at=func.coalesce(SignoffRequest.opened_at, now))
                    .execution_options(synchronize_session=False))
    audit(session, _signer(req, ip, user_agent), "signoff.opened", "signoff_request", req.id,
          content_digest=view.content_digest)
    return view


def request_code(session: Session, token: str, *, mailer: Mailer, ip: str | None,
                 user_agent: str | None) -> LinkView:
    """Mail a verification code to the request's address, when its project requires one."""
    req, stage, project = _lookup(session, _token_hash(token))
    if req.status in ("approved", "rejected"):
        raise AlreadyDecided(_view(session, req, stage, project))
    if not _usable(req, stage, utcnow()):
        raise LinkInvalid()
    _check_live(session, req, stage, project)
    if not requires_code(session, req):
        raise Conflict("this sign-off does not need a code", code="code_not_required")
    issue_code(session, req, token, mailer=mailer, actor=_signer(req, ip, user_agent),
               org=brand_of(session, req.org_id).name, stage_title=stage.title, project_name=project.name,
               now=utcnow())
    return _view(session, req, stage, project)


def decide_by_token(session: Session, token: str, body: DecisionIn, *, ip: str | None,
                    user_agent: str | None) -> LinkView:
    """Record the signer's decision once; raise AlreadyDecided or LinkInvalid otherwise."""
    token_hash, now = _token_hash(token), utcnow()
    status = "approved" if body.decision == "approve" else "rejected"
    req, stage, project = _lookup(session, token_hash)
    if _usable(req, stage, now):
        _check_live(session, req, stage, project)
    content = content_of(session, _token_scope(session, project), stage)
    digest = content_digest(content)
    shown = body.content_digest or req.content_digest
    if _usable(req, stage, now) and shown and shown != digest:
        raise ContentChanged(_view(session, req, stage, project))
    spend = _code_to_spend(session, req, stage, token, body.code, now)
    won = session.execute(
        update(SignoffRequest)
        .where(SignoffRequest.id == req.id, SignoffRequest.status == "pending",
               SignoffRequest.expires_at > now,
               SignoffRequest.stage_id.in_(select(Stage.id).where(Stage.deleted_at.is_(None))),
               SignoffRequest.project_id.in_(select(Project.id).where(Project.archived_at.is_(None))),
               *([SignoffRequest.code_hash == spend] if spend else []))
        .values(status=status, decided_at=now, signer_name=body.name, signer_email=SignoffRequest.recipient_email,
                note=body.note or None, decided_ip=ip, decided_user_agent=(user_agent or "")[:400] or None,
                **({"code_hash": None, "code_verified_at": now} if spend else {}))
        .returning(SignoffRequest.id)
        .execution_options(synchronize_session=False)
    ).first()
    req, stage, project = _lookup(session, token_hash)
    if won is None:
        if req.status in ("approved", "rejected"):
            raise AlreadyDecided(_view(session, req, stage, project))
        if _usable(req, stage, now):  # archived while the decision was on its way
            _check_live(session, req, stage, project)
        if spend and _usable(req, stage, now):
            raise CodeRefused("this code was already used: ask for a new one", code="code_used")
        raise LinkInvalid()
    req.snapshot = {**snapshot(session, _token_scope(session, project), stage, project.name), "content_digest": digest}
    req.content_digest = digest
    actor = _signer(req, ip, user_agent)
    revision = seal(session, actor, stage, req, content) if status == "approved" else None
    audit(session, actor, "signoff.decided", "signoff_request", req.id, decision=status, channel="external",
          signer_name=body.name, signer_email=req.recipient_email, stage_id=str(stage.id),
          content_digest=digest, revision=revision.number if revision else None,
          documents_shown=[{k: d[k] for k in ("artifact_id", "version", "sha256")} for d in content["documents"]])
    move_stage(session, actor, stage, "signed_off" if status == "approved" else "rejected",
               request_id=str(req.id))
    session.flush()
    return _view(session, req, stage, project)
