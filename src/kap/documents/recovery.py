"""Documents' part of the recovery pass: rows a crash left in flight, stored files no row points at."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from kap.core.db import utcnow
from kap.core.jobs import enqueue_after_commit
from kap.core.recovery import Pass, recovery_step
from kap.documents.models import Artifact

IN_FLIGHT = ("queued", "processing")
QUEUED_STALE = timedelta(hours=1)
MAX_RECOVERIES = 2  # a document that takes its worker down twice fails instead of looping


def _interrupted(sweep: Pass, artifact: Artifact) -> bool:
    claim = (artifact.meta or {}).get("claim") or {}
    if artifact.status == "processing":
        return sweep.abandoned(claim.get("by"), artifact.updated_at)
    # queued: its job normally waits in the queue; one lost between commit and hand-off is re-sent,
    # late enough that a long queue is not mistaken for a lost job
    return artifact.updated_at < utcnow() - max(sweep.grace, QUEUED_STALE)


@recovery_step("documents_in_flight")
def recover_in_flight(sweep: Pass) -> int:
    """Re-queue documents whose worker died (or that waited past the grace); fail repeat offenders."""
    from kap.documents.jobs import ingest_artifact, ocr_artifact

    repaired = 0
    with sweep.runtime.db.service_transaction() as session:
        # another process's pass may be at the same rows: each row is repaired by one of them
        rows = session.scalars(select(Artifact).where(Artifact.status.in_(IN_FLIGHT))
                               .order_by(Artifact.updated_at).limit(500)
                               .with_for_update(skip_locked=True)).all()
        for artifact in rows:
            if not _interrupted(sweep, artifact):
                continue
            meta: dict[str, Any] = dict(artifact.meta or {})
            claim = meta.pop("claim", None) or {}
            count = int(meta.get("recoveries", 0)) + 1
            meta["recoveries"] = count
            artifact.meta, artifact.updated_at = meta, utcnow()
            if count > MAX_RECOVERIES:
                artifact.status = "failed"
                artifact.status_reason = "processing was interrupted repeatedly; re-ingest to try again"
            else:
                artifact.status = "queued"
                job = ocr_artifact if claim.get("job") == "ocr" else ingest_artifact
                if job is ocr_artifact:
                    artifact.status = "processing"  # the OCR job claims from processing or needs_ocr
                enqueue_after_commit(session, job, str(artifact.id))
            repaired += 1
    return repaired


@recovery_step("stray_stored_files")
def sweep_stray_files(sweep: Pass) -> int:
    """Delete stored document files that no row points at (a crash between store and commit)."""
    storage = sweep.runtime.storage.artifacts
    keys = list(storage.list("artifacts/"))
    if not keys:
        return 0
    with sweep.runtime.db.service_session() as session:
        known = set(session.scalars(select(Artifact.storage_key).where(Artifact.storage_key.like("artifacts/%"))))
    removed = 0
    for key in keys:
        if key in known:
            continue
        if sweep.abandoned(None, storage.modified(key)):
            storage.delete(key)
            removed += 1
    return removed
