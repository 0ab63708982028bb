"""Sealed revisions: what a signer approved is frozen; later edits make a draft that needs a new sign-off.

A stage's *content* is its title, summary, planned dates and attached documents (each by
id, name, version and sha256). On approval the content is sealed as a `signed` revision.
Editing a signed stage afterwards writes the new content to a `draft` revision (one per
round of changes), moves the stage out of `signed_off`, and the page shows the difference
against the signed revision until the next approval seals the draft.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kap.core.db import utcnow
from kap.core.scope import ProjectScope
from kap.stages.models import SignoffRequest, Stage, StageRevision
from kap.stages.records import Actor, audit, move_stage, stage_artifacts

FIELDS = ("title", "summary", "planned_start", "planned_end")
CHANGED_REASON = "changed after sign-off"


def content_of(session: Session, scope: ProjectScope, stage: Stage) -> dict[str, Any]:
    """The stage's current content, as a signer sees it."""
    docs = stage_artifacts(session, scope, [stage.id])[stage.id]
    return {"title": stage.title, "summary": stage.summary or "",
            "planned_start": stage.planned_start.isoformat() if stage.planned_start else None,
            "planned_end": stage.planned_end.isoformat() if stage.planned_end else None,
            "documents": [{"artifact_id": str(d.id), "name": d.name, "version": d.version, "sha256": d.sha256}
                          for d in docs]}


def revision_content(rev: StageRevision) -> dict[str, Any]:
    """A revision's content in the same shape as `content_of`."""
    return {"title": rev.title, "summary": rev.summary or "",
            "planned_start": rev.planned_start.isoformat() if rev.planned_start else None,
            "planned_end": rev.planned_end.isoformat() if rev.planned_end else None,
            "documents": list(rev.documents or [])}


def content_digest(content: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of a content: equal digests, equal content."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def revisions(session: Session, scope: ProjectScope,
              stage_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[StageRevision]]:
    """Every revision of each stage, newest first."""
    out: dict[uuid.UUID, list[StageRevision]] = {sid: [] for sid in stage_ids}
    if not stage_ids:
        return out
    rows = session.scalars(select(StageRevision).where(
        StageRevision.project_id == scope.project_id, StageRevision.stage_id.in_(stage_ids))
        .order_by(StageRevision.number.desc()))
    for rev in rows:
        out[rev.stage_id].append(rev)
    return out


def _latest(session: Session, stage: Stage) -> StageRevision | None:
    return session.scalar(select(StageRevision).where(StageRevision.stage_id == stage.id)
                          .order_by(StageRevision.number.desc()).limit(1))


def has_signed_revision(session: Session, stage: Stage) -> bool:
    """Whether any revision of the stage was ever signed."""
    return session.scalar(select(func.count()).select_from(StageRevision).where(
        StageRevision.stage_id == stage.id, StageRevision.state == "signed")) != 0


def _fill(rev: StageRevision, content: dict[str, Any]) -> None:
    rev.title, rev.summary, rev.documents = content["title"], content["summary"], content["documents"]
    rev.planned_start = _date(content["planned_start"])
    rev.planned_end = _date(content["planned_end"])


def _date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _new_revision(session: Session, stage: Stage, latest: StageRevision | None, state: str,
                  user_id: uuid.UUID | None) -> StageRevision:
    rev = StageRevision(org_id=stage.org_id, project_id=stage.project_id, stage_id=stage.id,
                        number=(latest.number + 1) if latest else 1, state=state, created_by=user_id,
                        created_at=utcnow(), documents=[])
    session.add(rev)
    return rev


def seal(session: Session, actor: Actor, stage: Stage, req: SignoffRequest, content: dict[str, Any]) -> StageRevision:
    """Freeze the approved content as a signed revision (the open draft, or a new one)."""
    latest = _latest(session, stage)
    rev = latest if latest is not None and latest.state == "draft" else _new_revision(
        session, stage, latest, "signed", actor.user_id)
    _fill(rev, content)
    rev.state, rev.request_id, rev.signed_at = "signed", req.id, req.decided_at or utcnow()
    session.flush()
    req.revision_id = rev.id
    audit(session, actor, "stage.sealed", "stage", stage.id, revision=rev.number, request_id=str(req.id),
          digest=content_digest(content))
    return rev


def after_edit(session: Session, scope: ProjectScope, actor: Actor, stage: Stage) -> StageRevision | None:
    """Record an edit of a signed stage as its draft revision and take the stage out of signed off."""
    latest = _latest(session, stage)
    if latest is None:
        return None
    content = content_of(session, scope, stage)
    if latest.state == "signed" and revision_content(latest) == content:
        return None
    draft = latest if latest.state == "draft" else _new_revision(session, stage, latest, "draft", actor.user_id)
    _fill(draft, content)
    session.flush()
    if stage.status == "signed_off":
        move_stage(session, actor, stage, "in_progress", reason=CHANGED_REASON, revision=draft.number)
    return draft


def diff(signed: dict[str, Any], current: dict[str, Any]) -> list[dict[str, Any]]:
    """What changed between the signed content and the current one, field by field."""
    changes: list[dict[str, Any]] = []
    for name in FIELDS:
        if signed.get(name) != current.get(name):
            changes.append({"field": name, "signed": signed.get(name), "current": current.get(name)})
    before = {d["artifact_id"]: d for d in signed.get("documents", [])}
    after = {d["artifact_id"]: d for d in current.get("documents", [])}
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        changes.append({"field": "document", "signed": _doc_label(old), "current": _doc_label(new)})
    return changes


def _doc_label(doc: dict[str, Any] | None) -> str | None:
    return f"{doc['name']} (v{doc['version']}, sha256 {doc['sha256'][:12]})" if doc else None
