"""The RAID extraction job: after a document is ingested, propose the items it contains."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import select

from kap.core.jobs import current_runtime, task
from kap.core.scope import trusted_scope
from kap.documents.models import Artifact, ArtifactChunk
from kap.raid import dates, service
from kap.raid.extract import Segment, extract

log = logging.getLogger("kap.raid.jobs")
PROSE_KINDS = ("docx", "pdf", "md", "txt", "html", "pptx", "eml", "png", "jpeg", "tiff")


def segments_of(chunks: Sequence[Any]) -> list[Segment]:
    """Chunks joined back into the segments they were cut from (same page and locator, in order)."""
    segments: list[Segment] = []
    for chunk in chunks:
        last = segments[-1] if segments else None
        if last is not None and last.page == chunk.page and last.locator == chunk.locator:
            last.text += "\n" + chunk.text
        else:
            segments.append(Segment(chunk.text, chunk.page, chunk.locator))
    return segments


@task(retries=2, retry_delay=10)
def extract_raid(artifact_id: str) -> None:
    """Read a ready document's text and record the actions, risks, issues and decisions it proposes."""
    with current_runtime().db.service_transaction() as session:
        artifact = session.get(Artifact, uuid.UUID(artifact_id))
        if artifact is None or artifact.status not in ("ready", "needs_ocr"):
            return
        # three columns, not ORM rows: this runs in the server's threads after every upload
        chunks = session.execute(select(ArtifactChunk.text, ArtifactChunk.page, ArtifactChunk.locator)
                                 .where(ArtifactChunk.artifact_id == artifact.id,
                                        ArtifactChunk.project_id == artifact.project_id)
                                 .order_by(ArtifactChunk.seq)).all()
        segments = segments_of(chunks)
        uploaded = artifact.created_at.date() if artifact.created_at else date.today()
        first = segments[0].text if segments else ""
        stated = dates.document_date(artifact.name, first, uploaded, prose=artifact.kind in PROSE_KINDS)
        proposals = extract(segments, name=artifact.name, kind=artifact.kind, ref_date=stated or uploaded)
        scope = trusted_scope(session, artifact.project_id, purpose="raid-extract", org_id=artifact.org_id)
        if scope is None:
            return
        counts = service.record_proposals(session, scope, artifact, proposals, stated)
        log.info("RAID extraction of %s: %s", artifact.id, counts)
