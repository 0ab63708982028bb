"""Document jobs: extract an upload, OCR the lane's pages, delete stored files after a commit.

Jobs run as trusted service work (no user): each looks its artifact up by id and
writes in short transactions, never holding one open while a file is parsed.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from typing import Any

from sqlalchemy import select

from kap.core.db import utcnow
from kap.core.jobs import current_runtime, task
from kap.core.owner import owner_tag
from kap.documents import ingest
from kap.documents import recovery as _recovery  # noqa: F401  (registers its recovery steps)
from kap.documents.extract import Segment
from kap.documents.models import Artifact

log = logging.getLogger("kap.documents.jobs")


def _mark_failed(args: tuple[Any, ...], exc: BaseException) -> None:
    """After the last retry: the document shows the failure instead of staying queued."""
    if not args:
        return
    with current_runtime().db.service_transaction() as session:
        artifact = session.get(Artifact, uuid.UUID(str(args[0])))
        if artifact is not None and artifact.status in ("queued", "processing"):
            artifact.status = "failed"
            artifact.status_reason = f"processing failed after retries ({exc.__class__.__name__})"
            artifact.updated_at = utcnow()


def _claim(artifact_id: str, expected: tuple[str, ...], job: str) -> Artifact | None:
    with current_runtime().db.service_transaction() as session:
        artifact = session.get(Artifact, uuid.UUID(artifact_id))
        if artifact is None or artifact.status not in expected:
            return None
        artifact.status, artifact.updated_at = "processing", utcnow()
        # who works on it: the recovery pass re-queues the document if this process dies
        artifact.meta = {**(artifact.meta or {}), "claim": {"by": owner_tag(), "job": job}}
        session.flush()
        session.expunge(artifact)
        return artifact


@task(retries=3, retry_delay=10, on_failure=_mark_failed)
def ingest_artifact(artifact_id: str) -> None:
    """Extract, chunk and index an uploaded document."""
    rt = current_runtime()
    claimed = _claim(artifact_id, ("queued", "processing"), "ingest")
    if claimed is None:
        return
    path = ingest.fetch(rt.storage.artifacts, claimed, rt.settings)
    try:
        tree = ingest.extract_tree(rt.settings, path, claimed.kind)
        try:
            with rt.db.service_transaction() as session:
                artifact = session.get(Artifact, claimed.id)
                if artifact is None:  # deleted while it was processed
                    return
                _, replaced = ingest.write_tree(session, rt.storage.artifacts, artifact, tree)
        finally:
            ingest.cleanup_tree(tree)
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)
    _delete_keys(replaced)


@task(retries=2, retry_delay=30, on_failure=_mark_failed)
def ocr_artifact(artifact_id: str) -> None:
    """Run Tesseract over a document's lane pages and make their text searchable."""
    rt = current_runtime()
    claimed = _claim(artifact_id, ("processing", "needs_ocr"), "ocr")
    if claimed is None:
        return
    pages = list(claimed.ocr_pages or []) or list(range(1, max(claimed.page_count, 1) + 1))
    path = ingest.fetch(rt.storage.artifacts, claimed, rt.settings)
    try:
        result = ingest.ocr(path, claimed.kind, pages)
        segments: list[Segment] = list(result.segments()) if result.ok else []
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)
    with rt.db.service_transaction() as session:
        artifact = session.get(Artifact, claimed.id)
        if artifact is not None:
            _record_ocr(artifact, session, result.reason, segments, pages)


def _record_ocr(artifact: Artifact, session: Any, reason: str | None, segments: list[Segment],
                pages: list[int]) -> None:
    artifact.updated_at = utcnow()
    if not segments:
        artifact.status = "needs_ocr"
        artifact.status_reason = f"OCR found no text ({reason})" if reason else "OCR found no text: paste it instead"
        return
    ingest.add_ocr_chunks(session, artifact, segments)
    artifact.meta = {**(artifact.meta or {}), "ocr": {"mode": "ocr", "pages": pages, "at": utcnow().isoformat()}}
    artifact.ocr_pages, artifact.status, artifact.status_reason = [], "ready", None


@task(retries=5, retry_delay=30)
def delete_stored_files(keys: list[str]) -> None:
    """Remove stored files of deleted or replaced documents; a key ending in "/" removes all below it."""
    _delete_keys(keys)


def _delete_keys(keys: list[str]) -> None:
    storage = current_runtime().storage.artifacts
    for key in keys:
        for stored in list(storage.list(key)) if key.endswith("/") else [key]:
            storage.delete(stored)


def stuck_documents(session: Any) -> list[uuid.UUID]:
    """Documents still queued or processing (the recovery pass re-queues those whose worker died)."""
    return list(session.scalars(select(Artifact.id).where(Artifact.status.in_(("queued", "processing")))))
