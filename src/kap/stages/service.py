"""Stages of a project: the rules, never the commit.

Sign-off requests live in `kap.stages.signoff`; the external link in `kap.stages.external`.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from kap.core.db import utcnow
from kap.core.deps import ProjectContext
from kap.core.errors import Conflict, NotFound, ValidationFailed
from kap.core.models import OrgMember, ProjectMember
from kap.core.permissions import org_admin_roles
from kap.core.scope import ProjectScope
from kap.documents.models import Artifact
from kap.stages.models import SignoffRequest, Stage, StageArtifact, StageRevision
from kap.stages.records import actor_of, audit, move_stage, request_read, revoke_open_requests, stage_artifacts
from kap.stages.revisions import after_edit, content_of, diff, has_signed_revision, revision_content, revisions
from kap.stages.schemas import ChangeRead, RevisionRead, StageCreate, StageRead, StageUpdate

DEFAULT_STAGES = ("Discovery", "Design", "Build", "Test", "Deploy", "Hypercare")


def find_stage(ctx: ProjectContext, stage_id: uuid.UUID) -> Stage:
    """A live stage of the caller's project, or the one 404."""
    stage = ctx.session.scalar(select(Stage).where(
        Stage.id == stage_id, Stage.project_id == ctx.project_id, Stage.deleted_at.is_(None)))
    if stage is None:
        raise NotFound("stage not found", code="stage_not_found")
    return stage


def editable_stage(ctx: ProjectContext, stage_id: uuid.UUID) -> Stage:
    """A stage that may still change: live and not archived."""
    stage = find_stage(ctx, stage_id)
    if stage.archived_at is not None:
        raise Conflict("the stage is archived; its records can be read but not changed", code="stage_archived")
    return stage


def _live_stages(session: Session, scope: ProjectScope, *, archived: bool = False) -> list[Stage]:
    stmt = select(Stage).where(Stage.project_id == scope.project_id, Stage.deleted_at.is_(None))
    if not archived:
        stmt = stmt.where(Stage.archived_at.is_(None))
    return list(session.scalars(stmt.order_by(Stage.position, Stage.created_at, Stage.id)))


def _latest_requests(session: Session, scope: ProjectScope,
                     stage_ids: list[uuid.UUID]) -> dict[uuid.UUID, SignoffRequest]:
    latest: dict[uuid.UUID, SignoffRequest] = {}
    if not stage_ids:
        return latest
    rows = session.scalars(select(SignoffRequest).where(
        SignoffRequest.project_id == scope.project_id, SignoffRequest.stage_id.in_(stage_ids))
        .order_by(SignoffRequest.created_at.desc(), SignoffRequest.id))
    for req in rows:
        latest.setdefault(req.stage_id, req)
    return latest


def _revision_read(rev: StageRevision) -> RevisionRead:
    return RevisionRead(id=rev.id, number=rev.number, state=rev.state, title=rev.title, summary=rev.summary,
                        planned_start=rev.planned_start, planned_end=rev.planned_end,
                        documents=list(rev.documents or []), request_id=rev.request_id,
                        created_at=rev.created_at, signed_at=rev.signed_at)


def _seal_view(session: Session, scope: ProjectScope, stage: Stage, revs: list[StageRevision]) -> dict[str, Any]:
    """The signed revision, and what changed since, for a stage with a sign-off in its history."""
    signed = next((r for r in revs if r.state == "signed"), None)
    if signed is None:
        return {}
    changes = diff(revision_content(signed), content_of(session, scope, stage))
    return {"signed_revision": _revision_read(signed), "changes": [ChangeRead(**c) for c in changes],
            "changed_after_signoff": bool(revs[0].state == "draft" and stage.status != "signed_off")}


def _reads(session: Session, scope: ProjectScope, stages: list[Stage]) -> list[StageRead]:
    ids = [s.id for s in stages]
    docs = stage_artifacts(session, scope, ids)
    latest = _latest_requests(session, scope, ids)
    revs = revisions(session, scope, ids)
    return [StageRead(id=s.id, project_id=s.project_id, title=s.title, order=s.position, status=s.status,
                      planned_start=s.planned_start, planned_end=s.planned_end, owner_id=s.owner_id,
                      summary=s.summary, artifacts=docs[s.id],
                      latest_request=request_read(latest[s.id]) if s.id in latest else None,
                      revisions=[_revision_read(r) for r in revs[s.id]], archived_at=s.archived_at,
                      created_at=s.created_at, updated_at=s.updated_at, **_seal_view(session, scope, s, revs[s.id]))
            for s in stages]


def stage_read(ctx: ProjectContext, stage: Stage) -> StageRead:
    """The API view of one stage."""
    return _reads(ctx.session, ctx.scope, [stage])[0]


def list_stages(ctx: ProjectContext, *, archived: bool = False) -> list[StageRead]:
    """The project's stages in order (archived ones too when asked)."""
    return _reads(ctx.session, ctx.scope, _live_stages(ctx.session, ctx.scope, archived=archived))


def _next_position(ctx: ProjectContext) -> int:
    top = ctx.session.scalar(select(func.max(Stage.position)).where(
        Stage.project_id == ctx.project_id, Stage.deleted_at.is_(None)))
    return 0 if top is None else top + 1


def _check_owner(ctx: ProjectContext, owner_id: uuid.UUID | None) -> None:
    if owner_id is None:
        return
    member = ctx.session.scalar(select(ProjectMember.id).where(
        ProjectMember.project_id == ctx.project_id, ProjectMember.user_id == owner_id))
    org_admin = ctx.session.scalar(select(OrgMember.id).where(
        OrgMember.org_id == ctx.org_id, OrgMember.user_id == owner_id, OrgMember.role.in_(org_admin_roles())))
    if member is None and org_admin is None:
        raise ValidationFailed("the owner must be a member of the project", details={"field": "owner_id"})


def _set_artifacts(ctx: ProjectContext, stage: Stage, artifact_ids: list[uuid.UUID]) -> None:
    wanted = set(artifact_ids)
    found = set(ctx.session.scalars(select(Artifact.id).where(
        Artifact.project_id == ctx.project_id, Artifact.id.in_(wanted)))) if wanted else set()
    missing = sorted(str(a) for a in wanted - found)
    if missing:
        raise ValidationFailed("no such document in this project", details={"artifact_ids": missing})
    current = {row.artifact_id: row for row in ctx.session.scalars(
        select(StageArtifact).where(StageArtifact.stage_id == stage.id))}
    for artifact_id in set(current) - wanted:
        ctx.session.delete(current[artifact_id])
    for artifact_id in wanted - set(current):
        ctx.session.add(StageArtifact(org_id=ctx.org_id, project_id=ctx.project_id, stage_id=stage.id,
                                      artifact_id=artifact_id))


def _new_stage(ctx: ProjectContext, title: str, position: int) -> Stage:
    stage = Stage(org_id=ctx.org_id, project_id=ctx.project_id, title=title, position=position,
                  status="pending", summary="", created_by=ctx.user_id)
    ctx.session.add(stage)
    ctx.session.flush()
    return stage


def create_stage(ctx: ProjectContext, body: StageCreate) -> StageRead:
    """Add a stage to the project (at the end unless an order is given)."""
    _check_owner(ctx, body.owner_id)
    stage = _new_stage(ctx, body.title, body.order if body.order is not None else _next_position(ctx))
    stage.status, stage.summary, stage.owner_id = body.status, body.summary, body.owner_id
    stage.planned_start, stage.planned_end = body.planned_start, body.planned_end
    _set_artifacts(ctx, stage, body.artifact_ids)
    audit(ctx.session, actor_of(ctx), "stage.created", "stage", stage.id, title=stage.title, status=stage.status)
    ctx.session.flush()
    return stage_read(ctx, stage)


def _check_status_change(stage: Stage, status: str) -> None:
    if stage.status == "in_review" and status != "in_review":
        raise Conflict("a sign-off request is open: revoke it before changing the status",
                       code="signoff_pending")


_EDITABLE = (("title", "title"), ("order", "position"), ("summary", "summary"), ("planned_start", "planned_start"),
             ("planned_end", "planned_end"), ("owner_id", "owner_id"))
_NOT_NULL = ("title", "order", "summary")


def _apply_fields(ctx: ProjectContext, stage: Stage, body: StageUpdate) -> dict[str, object]:
    changed: dict[str, object] = {}
    for name, column in _EDITABLE:
        value = getattr(body, name)
        if name not in body.model_fields_set or (value is None and name in _NOT_NULL):
            continue
        if name == "owner_id":
            _check_owner(ctx, value)
        if getattr(stage, column) != value:
            setattr(stage, column, value)
            changed[name] = None if value is None else str(value)
    if body.artifact_ids is not None:
        _set_artifacts(ctx, stage, body.artifact_ids)
        changed["artifact_ids"] = [str(a) for a in body.artifact_ids]
    return changed


def update_stage(ctx: ProjectContext, stage_id: uuid.UUID, body: StageUpdate) -> StageRead:
    """Edit a stage; decided statuses come only from sign-off decisions; a signed stage gets a draft revision."""
    stage = editable_stage(ctx, stage_id)
    fields = body.model_fields_set
    _check_dates(body.planned_start if "planned_start" in fields else stage.planned_start,
                 body.planned_end if "planned_end" in fields else stage.planned_end)
    if body.status is not None and body.status != stage.status:
        _check_status_change(stage, body.status)
    changed = _apply_fields(ctx, stage, body)
    if changed:
        stage.updated_at = utcnow()
        audit(ctx.session, actor_of(ctx), "stage.updated", "stage", stage.id, title=stage.title, changed=changed)
        ctx.session.flush()
        after_edit(ctx.session, ctx.scope, actor_of(ctx), stage)
    if body.status is not None:
        move_stage(ctx.session, actor_of(ctx), stage, body.status)
    ctx.session.flush()
    return stage_read(ctx, stage)


def _check_dates(start: date | None, end: date | None) -> None:
    if start and end and end < start:
        raise ValidationFailed("planned_end is before planned_start", details={"field": "planned_end"})


def set_documents(ctx: ProjectContext, stage_id: uuid.UUID, artifact_ids: list[uuid.UUID]) -> StageRead:
    """Attach exactly these project documents to a stage (detaching the others)."""
    stage = editable_stage(ctx, stage_id)
    before = [str(d.id) for d in stage_artifacts(ctx.session, ctx.scope, [stage.id])[stage.id]]
    _set_artifacts(ctx, stage, artifact_ids)
    ctx.session.flush()
    after = [str(d.id) for d in stage_artifacts(ctx.session, ctx.scope, [stage.id])[stage.id]]
    if sorted(before) != sorted(after):
        stage.updated_at = utcnow()
        audit(ctx.session, actor_of(ctx), "stage.documents_set", "stage", stage.id, title=stage.title,
              attached=sorted(set(after) - set(before)), detached=sorted(set(before) - set(after)))
        after_edit(ctx.session, ctx.scope, actor_of(ctx), stage)
    ctx.session.flush()
    return stage_read(ctx, stage)


def _check_deletable(ctx: ProjectContext, stage: Stage) -> None:
    if stage.status == "signed_off" or has_signed_revision(ctx.session, stage):
        raise Conflict("a stage that was signed off cannot be deleted; archive it instead",
                       code="stage_signed_off")


def archive_stage(ctx: ProjectContext, stage_id: uuid.UUID) -> StageRead:
    """Take a stage off the plan while keeping it, its revisions and its certificates readable."""
    stage = editable_stage(ctx, stage_id)
    revoke_open_requests(ctx.session, actor_of(ctx), stage, reason="stage archived")
    if stage.status == "in_review":
        move_stage(ctx.session, actor_of(ctx), stage, "in_progress", reason="stage archived")
    stage.archived_at = utcnow()
    audit(ctx.session, actor_of(ctx), "stage.archived", "stage", stage.id, title=stage.title)
    ctx.session.flush()
    return stage_read(ctx, stage)


def delete_stage(ctx: ProjectContext, stage_id: uuid.UUID) -> None:
    """Remove a stage from the plan; its sign-off records are kept and any open link stops working."""
    stage = find_stage(ctx, stage_id)
    _check_deletable(ctx, stage)
    revoke_open_requests(ctx.session, actor_of(ctx), stage, reason="stage deleted")
    stage.deleted_at = utcnow()
    audit(ctx.session, actor_of(ctx), "stage.deleted", "stage", stage.id, title=stage.title)
    ctx.session.flush()


def _by_title(ctx: ProjectContext, title: str) -> Stage | None:
    return ctx.session.scalar(select(Stage).where(
        Stage.project_id == ctx.project_id, Stage.deleted_at.is_(None), Stage.archived_at.is_(None),
        or_(Stage.title == title, func.lower(Stage.title) == title.lower()))
        .order_by(Stage.position, Stage.created_at).limit(1))


def _title_key(title: str) -> str:
    return " ".join(title.split()).casefold()


def taken_titles(ctx: ProjectContext) -> set[str]:
    """Every title a stage of the project has or was signed under (archived stages included), normalised."""
    titles = set(ctx.session.scalars(select(Stage.title).where(
        Stage.project_id == ctx.project_id, Stage.deleted_at.is_(None))))
    titles |= set(ctx.session.scalars(select(StageRevision.title).join(Stage, Stage.id == StageRevision.stage_id)
                                      .where(StageRevision.project_id == ctx.project_id,
                                             Stage.deleted_at.is_(None))))
    return {_title_key(t) for t in titles}


def missing_template_titles(ctx: ProjectContext) -> list[str]:
    """The standard stages the project has under no name yet."""
    taken = taken_titles(ctx)
    return [t for t in DEFAULT_STAGES if _title_key(t) not in taken]


def ensure_stage(ctx: ProjectContext, title: str) -> StageRead:
    """The live stage with this title (any case), created at the end of the plan if missing."""
    title = title.strip()
    if not title or len(title) > 200:
        raise ValidationFailed("a stage title has 1 to 200 characters", details={"field": "title"})
    stage = _by_title(ctx, title)
    if stage is None:
        stage = _new_stage(ctx, title, _next_position(ctx))
        audit(ctx.session, actor_of(ctx), "stage.created", "stage", stage.id, title=title, status="pending")
        ctx.session.flush()
    return stage_read(ctx, stage)


def apply_template(ctx: ProjectContext) -> list[StageRead]:
    """Add the default stages the project does not have yet; return the whole plan."""
    added = missing_template_titles(ctx)
    for title in added:
        _new_stage(ctx, title, _next_position(ctx))
    if added:
        audit(ctx.session, actor_of(ctx), "stage.template_applied", "project", ctx.project_id, added=added)
        ctx.session.flush()
    return list_stages(ctx)
