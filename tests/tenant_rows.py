"""One row in every tenant table of a project, so a read that forgets its filter has something to leak."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func, insert, select

from kap.ask.models import AskQuestion
from kap.backups.models import BackupRun, RestoreActivity
from kap.comms.models import CommsSettings, DigestSend, Subscription
from kap.core.audit import record_audit
from kap.core.db import Base, Database, new_id, utcnow
from kap.core.models import EmailLog, ProjectMember, TelemetryEvent
from kap.documents.models import Artifact, ArtifactChunk
from kap.raid.models import RaidChange, RaidComment, RaidItem
from kap.stages.models import (
    SignoffReminderLink,
    SignoffRequest,
    Stage,
    StageArtifact,
    StageRevision,
    StageSettings,
    StageSigner,
)


def tenant_table_names() -> set[str]:
    """Every table with a project_id column."""
    return {t.name for t in Base.metadata.sorted_tables if "project_id" in t.c}


def seed_every_table(db: Database, org: uuid.UUID, project: uuid.UUID, user: uuid.UUID,
                     tag: str) -> dict[str, uuid.UUID]:
    """Add one row of every kind to a project (its words carry `tag`); return each row's id by table."""
    now = utcnow()
    ids: dict[str, uuid.UUID] = {}
    word = f"zz{tag}secret"
    with db.service_transaction() as s:
        if s.scalar(select(ProjectMember.id).where(ProjectMember.project_id == project,
                                                   ProjectMember.user_id == user)) is None:
            s.add(ProjectMember(org_id=org, project_id=project, user_id=user, role="owner"))
        artifact = Artifact(org_id=org, project_id=project, name=f"{tag} payroll secrets.pdf",
                            media_type="application/pdf", kind="pdf", size=10, sha256="0" * 64,
                            storage_key=f"seed/{new_id()}", status="ready", uploaded_by=user, shareable=True)
        lane = Artifact(org_id=org, project_id=project, name=f"{tag} scanned contract.pdf",
                        media_type="application/pdf", kind="pdf", size=10, sha256="1" * 64,
                        storage_key=f"seed/{new_id()}", status="needs_ocr", uploaded_by=user, ocr_pages=[1])
        stage = Stage(org_id=org, project_id=project, title=f"{tag} Discovery", position=0, status="in_review",
                      summary="", created_by=user)
        item = RaidItem(org_id=org, project_id=project, kind="risk", ref="R-01", fingerprint="ref:R-01",
                        title=f"{tag} {word} vendor risk", details="", owner=f"{tag} owner", status="open",
                        severity="high", state="accepted", origin="extracted", source_artifact_id=None,
                        source_locator="", source_quote=f"Risk R-01: {tag} {word} vendor risk")
        s.add_all([artifact, lane, stage, item])
        s.flush()
        chunk_id = new_id()
        s.execute(insert(ArtifactChunk), [{"id": chunk_id, "org_id": org, "project_id": project,
                                            "artifact_id": artifact.id, "seq": 0, "page": 1, "locator": "p1",
                                            "text": f"The {word} salary table of {tag}.", "created_at": now}])
        request = SignoffRequest(org_id=org, project_id=project, stage_id=stage.id,
                                 recipient_email=f"signer-{tag}@example.com", status="pending",
                                 expires_at=now + timedelta(days=7), token_hash=uuid.uuid4().hex, open_count=0,
                                 snapshot={}, channel="external", created_by=user)
        s.add(request)
        s.flush()
        rows = [
            request,
            SignoffReminderLink(org_id=org, project_id=project, request_id=request.id, token_hash=uuid.uuid4().hex),
            StageArtifact(org_id=org, project_id=project, stage_id=stage.id, artifact_id=artifact.id),
            StageSigner(org_id=org, project_id=project, user_id=user, created_by=user),
            StageRevision(org_id=org, project_id=project, stage_id=stage.id, number=1, state="draft",
                          title=f"{tag} Discovery", summary=f"{tag} {word} scope", documents=[]),
            StageSettings(org_id=org, project_id=project, reminder_days=3),
            AskQuestion(org_id=org, project_id=project, user_id=user, question=f"What is {word}?",
                        mode="extractive", retrieval="lexical", found=True),
            BackupRun(org_id=org, project_id=project, key=f"backups/{org}/{project}/{now:%Y%m%d}.zip",
                      day=now.date()),
            RestoreActivity(org_id=org, project_id=project, kind="restore", backup_key=f"backups/{org}/{project}/x.zip",
                            entry="artifacts/x", actor_label=tag),
            CommsSettings(org_id=org, project_id=project),
            Subscription(org_id=org, project_id=project, recipient_key=f"email:client-{tag}@example.com",
                         email=f"client-{tag}@example.com", category="digest", token=uuid.uuid4().hex,
                         subscribed=True),
            DigestSend(org_id=org, project_id=project, recipient_key=f"email:client-{tag}@example.com",
                       email=f"client-{tag}@example.com", iso_week="2026-W01", window_start=now, status="due"),
            EmailLog(org_id=org, project_id=project, kind="signoff", recipient=f"signer-{tag}@example.com",
                     subject=f"{tag} sign-off", provider="outbox", status="sent"),
            TelemetryEvent(org_id=org, project_id=project, kind="http_5xx", status=500, path=f"/{tag}"),
            RaidComment(org_id=org, project_id=project, item_id=item.id, author_id=user, author_label=tag,
                        body=f"{tag} comment on {word}"),
            RaidChange(org_id=org, project_id=project, item_id=item.id, origin="source", artifact_id=artifact.id,
                       changes={"created": [None, "risk"]}),
        ]
        s.add_all(rows)
        record_audit(s, org_id=org, project_id=project, actor_id=user, actor_label=tag, action="stage.status_changed",
                     target_type="stage", target_id=str(stage.id),
                     details={"title": stage.title, "from": "in_progress", "to": "in_review"})
        s.flush()
        ids.update({"artifacts": artifact.id, "stages": stage.id, "artifact_chunks": chunk_id,
                    "signoff_requests": request.id, "raid_items": item.id})
        for row in rows[1:]:
            ids[type(row).__table__.name] = row.id  # type: ignore[attr-defined]
    return ids


def rows_per_table(db: Database, project: uuid.UUID) -> dict[str, int]:
    """How many rows each tenant table holds for a project."""
    with db.service_session() as s:
        return {t.name: int(s.scalar(select(func.count()).select_from(t).where(t.c.project_id == project)) or 0)
                for t in Base.metadata.sorted_tables if "project_id" in t.c}
