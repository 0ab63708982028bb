"""The ingest pipeline shared by uploads, jobs and re-ingest: spool, store, extract, chunk, index.

Nothing here knows who is asking; callers pass a session that is already scoped
(the request's ProjectContext session, or a service session inside a job).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from kap.core.db import new_id, utcnow
from kap.core.errors import UnsupportedMediaType, ValidationFailed
from kap.core.jobs import enqueue_after_commit
from kap.core.owner import owner_tag
from kap.core.settings import Settings
from kap.core.storage import CHUNK, Storage
from kap.documents import sandbox
from kap.documents.detect import FileType, clean_name, detect
from kap.documents.extract import Segment
from kap.documents.models import Artifact, ArtifactChunk

CHUNK_TARGET = 1200
CHUNK_MAX = 2000
MAX_CHILD_DEPTH = 2
INSERT_BATCH = 500


@dataclass
class Staged:
    """An upload copied to a private work folder, hashed and typed."""

    work: Path
    path: Path
    name: str
    size: int
    sha256: str
    type: FileType

    def cleanup(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)


def work_folder(settings: Settings) -> Path:
    """A fresh private folder for one file's processing."""
    root = settings.kap_data_dir.resolve() / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"ingest-{owner_tag()}-", dir=root))


def stage(settings: Settings, stream: IO[bytes], raw_name: str | None) -> Staged:
    """Copy a stream to disk while hashing it, then decide its type (415 or 422 when refused)."""
    work = work_folder(settings)
    path = work / "source"
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("wb") as out:
            while piece := stream.read(CHUNK):
                digest.update(piece)
                out.write(piece)
                size += len(piece)
        name = clean_name(raw_name)
        if size == 0:
            raise ValidationFailed("the file is empty", code="empty_file")
        ftype = detect(path, name)
        typed = path.rename(work / f"source.{ftype.kind}")  # some readers insist on an extension
        return Staged(work, typed, name, size, digest.hexdigest(), ftype)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def storage_key(org_id: uuid.UUID, project_id: uuid.UUID, artifact_id: uuid.UUID, n: int = 1) -> str:
    """The storage key of an artifact's file, built from ids only."""
    return f"artifacts/{org_id.hex}/{project_id.hex}/{artifact_id.hex}/{n}"


def new_artifact(staged: Staged, *, org_id: uuid.UUID, project_id: uuid.UUID, uploaded_by: uuid.UUID | None,
                 parent_id: uuid.UUID | None = None) -> Artifact:
    """An artifact row for a staged file, not yet added to a session."""
    artifact_id = new_id()
    now = utcnow()
    return Artifact(id=artifact_id, org_id=org_id, project_id=project_id, parent_id=parent_id, name=staged.name,
                    media_type=staged.type.media_type, kind=staged.type.kind, size=staged.size,
                    sha256=staged.sha256, storage_key=storage_key(org_id, project_id, artifact_id),
                    status="queued", status_reason=None, page_count=0, chunk_count=0, ocr_pages=[], version=1,
                    shareable=False, uploaded_by=uploaded_by, meta={}, created_at=now, updated_at=now)


def store(storage: Storage, artifact: Artifact, path: Path) -> None:
    """Put the staged file into storage under the artifact's key."""
    with path.open("rb") as handle:
        storage.put(artifact.storage_key, handle)


def fetch(storage: Storage, artifact: Artifact, settings: Settings) -> Path:
    """Copy an artifact's stored file into a fresh work folder; return its path."""
    work = work_folder(settings)
    target = work / f"source.{artifact.kind}"
    try:
        with storage.open(artifact.storage_key) as source, target.open("wb") as out:
            while piece := source.read(CHUNK):
                out.write(piece)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return target


def extract(path: Path, kind: str) -> sandbox.SandboxResult:
    """Extract text from a file in the sandbox; results live in a work folder beside it."""
    return sandbox.run("text", kind, path, path.parent / "out")


def start_extract(path: Path, kind: str) -> sandbox.Running:
    """Start extracting a file in the sandbox; read its segments while it runs."""
    return sandbox.start("text", kind, path, path.parent / "out")


def ocr(path: Path, kind: str, pages: list[int]) -> sandbox.SandboxResult:
    """Run OCR over the given pages in the sandbox."""
    return sandbox.run("ocr", kind, path, path.parent / "ocr", pages=pages)


def split_text(text: str) -> list[str]:
    """Split text into pieces of about CHUNK_TARGET characters at paragraph, line or sentence ends."""
    text = text.strip()
    if len(text) <= CHUNK_MAX:
        return [text] if text else []
    pieces: list[str] = []
    current = ""
    for unit in _units(text):
        if current and len(current) + len(unit) + 1 > CHUNK_TARGET:
            pieces.append(current.strip())
            current = ""
        current = f"{current}\n{unit}" if current else unit
    if current.strip():
        pieces.append(current.strip())
    return pieces


def _units(text: str) -> Iterator[str]:
    for paragraph in re.split(r"\n\s*\n", text):
        if len(paragraph) <= CHUNK_TARGET:
            yield paragraph
            continue
        for line in paragraph.split("\n"):
            if len(line) <= CHUNK_TARGET:
                yield line
                continue
            for sentence in re.split(r"(?<=[.!?])\s+", line):
                for start in range(0, len(sentence), CHUNK_MAX):
                    yield sentence[start:start + CHUNK_MAX]


def chunk_rows(artifact: Artifact, segments: Iterable[Segment], first_seq: int = 0) -> Iterator[dict[str, object]]:
    """Rows for artifact_chunks, each remembering its page and locator."""
    seq = first_seq
    now = utcnow()
    for segment in segments:
        for piece in split_text(segment.text):
            yield {"id": new_id(), "org_id": artifact.org_id, "project_id": artifact.project_id,
                   "artifact_id": artifact.id, "seq": seq, "page": segment.page,
                   "locator": segment.locator[:200], "text": piece, "created_at": now}
            seq += 1


def insert_chunks(session: Session, rows: Iterable[dict[str, object]]) -> int:
    """Insert chunk rows in batches; return how many."""
    batch: list[dict[str, object]] = []
    count = 0
    for row in rows:
        batch.append(row)
        if len(batch) >= INSERT_BATCH:
            session.execute(insert(ArtifactChunk), batch)
            count += len(batch)
            batch = []
    if batch:
        session.execute(insert(ArtifactChunk), batch)
        count += len(batch)
    return count


def clear_chunks(session: Session, artifact: Artifact) -> None:
    """Remove an artifact's chunks (and, through the index triggers, its search entries)."""
    session.execute(delete(ArtifactChunk).where(ArtifactChunk.artifact_id == artifact.id,
                                                ArtifactChunk.project_id == artifact.project_id))


def apply(session: Session, artifact: Artifact, result: sandbox.SandboxResult) -> None:
    """Replace an artifact's chunks with an extraction result and set its status."""
    clear_chunks(session, artifact)
    count = insert_chunks(session, chunk_rows(artifact, result.segments())) if result.ok else 0
    _set_outcome(session, artifact, result, count)


def _set_outcome(session: Session, artifact: Artifact, result: sandbox.SandboxResult, count: int) -> None:
    artifact.updated_at = utcnow()
    if not result.ok:
        artifact.status, artifact.status_reason = "failed", result.reason
        artifact.chunk_count, artifact.ocr_pages = 0, []
        return
    artifact.chunk_count = count
    artifact.page_count = result.pages
    artifact.ocr_pages = list(result.ocr_pages)
    artifact.status = "needs_ocr" if result.ocr_pages else "ready"
    artifact.status_reason = _lane_reason(result.ocr_pages) if result.ocr_pages else None
    from kap.raid.jobs import extract_raid  # noqa: PLC0415  (documents do not depend on RAID at import time)
    enqueue_after_commit(session, extract_raid, str(artifact.id))


def stream_apply(session: Session, artifact: Artifact, running: sandbox.Running, *,
                 lock_seconds: float | None = None) -> sandbox.SandboxResult:
    """Write an artifact's chunks while the extractor still produces them, then set its status.

    The database's work (rows, search indexes) then overlaps the reading of the file.
    `lock_seconds`: on SQLite a writing transaction holds the database's only write lock,
    so past that many seconds of a still-running extraction the transaction is rolled back
    (the artifact is added again) and the chunks are written once the file is read.
    """
    clear_chunks(session, artifact)
    count, streaming = 0, True
    for segments in running.batches():
        if not streaming:
            continue
        if lock_seconds is not None and running.elapsed() > lock_seconds:
            session.rollback()
            streaming = False
            continue
        count += insert_chunks(session, chunk_rows(artifact, segments, count))
    result = running.finish()
    if not streaming:
        session.add(artifact)
        session.flush()
        apply(session, artifact, result)
        return result
    if not result.ok and count:
        clear_chunks(session, artifact)
    _set_outcome(session, artifact, result, count)
    return result


def _lane_reason(pages: list[int]) -> str:
    shown = ", ".join(str(p) for p in pages[:20]) + (" …" if len(pages) > 20 else "")
    return f"no text layer on page(s) {shown}: run OCR or paste the text"


def add_ocr_chunks(session: Session, artifact: Artifact, segments: Iterable[Segment]) -> int:
    """Append OCR or pasted text to an artifact's chunks; return how many were added."""
    last = session.scalar(select(ArtifactChunk.seq).where(ArtifactChunk.artifact_id == artifact.id)
                          .order_by(ArtifactChunk.seq.desc()).limit(1))
    added = insert_chunks(session, chunk_rows(artifact, segments, (last or 0) + 1))
    artifact.chunk_count += added
    return added


def existing_children(session: Session, artifact: Artifact) -> list[Artifact]:
    """The child documents (e-mail attachments) of an artifact."""
    return list(session.scalars(select(Artifact).where(Artifact.parent_id == artifact.id,
                                                       Artifact.project_id == artifact.project_id)))


def depth(session: Session, artifact: Artifact) -> int:
    """How many parents an artifact has."""
    level, parent = 0, artifact.parent_id
    while parent is not None and level < 10:
        level += 1
        parent = session.scalar(select(Artifact.parent_id).where(Artifact.id == parent))
    return level


@dataclass
class Extracted:
    """One file's extraction result and those of its attachments, ready to be written."""

    result: sandbox.SandboxResult
    children: list[tuple[Staged, Extracted]]
    skipped: list[str]


def extract_tree(settings: Settings, path: Path, kind: str, level: int = 0) -> Extracted:
    """Extract a file and, for e-mail, its attachments (to a bounded depth), touching no database."""
    return extract_children(settings, extract(path, kind), level)


def extract_children(settings: Settings, result: sandbox.SandboxResult, level: int) -> Extracted:
    """Stage and extract the attachments an extraction result found, touching no database."""
    children: list[tuple[Staged, Extracted]] = []
    skipped: list[str] = []
    if not result.ok or level >= MAX_CHILD_DEPTH:
        return Extracted(result, children, skipped)
    for attachment in result.attachments:
        try:
            with open(attachment["path"], "rb") as handle:
                staged = stage(settings, handle, attachment["name"])
        except (ValidationFailed, UnsupportedMediaType) as exc:
            skipped.append(f"{clean_name(attachment['name'])}: {exc.message}")
            continue
        children.append((staged, extract_tree(settings, staged.path, staged.type.kind, level + 1)))
    return Extracted(result, children, skipped)


def write_tree(session: Session, storage: Storage, artifact: Artifact, tree: Extracted) -> tuple[list[Artifact],
                                                                                                   list[str]]:
    """Write an extraction tree: chunks and status, then child documents (stored and indexed).

    Returns the new children and the storage keys of children it replaced (to delete after commit).
    """
    apply(session, artifact, tree.result)
    return write_children(session, storage, artifact, tree)


def write_children(session: Session, storage: Storage, artifact: Artifact,
                   tree: Extracted) -> tuple[list[Artifact], list[str]]:
    """Replace an artifact's child documents with those of an extraction tree (stored and indexed)."""
    replaced = []
    for old in existing_children(session, artifact):
        replaced.extend(_subtree_keys(session, old))
        session.delete(old)
    if tree.skipped:
        artifact.meta = {**(artifact.meta or {}), "skipped_attachments": tree.skipped}
    session.flush()
    children: list[Artifact] = []
    for staged, subtree in tree.children:
        child = new_artifact(staged, org_id=artifact.org_id, project_id=artifact.project_id,
                             uploaded_by=artifact.uploaded_by, parent_id=artifact.id)
        store(storage, child, staged.path)
        session.add(child)
        session.flush()
        grandchildren, _ = write_tree(session, storage, child, subtree)
        children += [child, *grandchildren]
    return children, replaced


def _subtree_keys(session: Session, artifact: Artifact) -> list[str]:
    keys = [artifact.storage_key]
    for child in existing_children(session, artifact):
        keys += _subtree_keys(session, child)
    return keys


def cleanup_tree(tree: Extracted) -> None:
    """Remove the work folders of a tree's attachments."""
    for staged, subtree in tree.children:
        cleanup_tree(subtree)
        staged.cleanup()
