"""Documents: upload, list, read, download, re-ingest, delete and the OCR lane. Never commits."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from typing import IO, Any

from sqlalchemy import Integer, Row, Select, String, Uuid, bindparam, func, select, type_coerce
from sqlalchemy.orm import Session

from kap.core.db import IdText, ListText, LoopReads, as_utc, has_written, pg_text, utcnow
from kap.core.deps import ProjectContext
from kap.core.errors import Busy, Conflict, NotFound
from kap.core.jobs import enqueue_after_commit
from kap.core.runtime import Runtime
from kap.documents import ingest
from kap.documents.jobs import delete_stored_files, ingest_artifact, ocr_artifact
from kap.documents.models import Artifact, ArtifactChunk
from kap.documents.schemas import (
    ArtifactDetail,
    ArtifactList,
    ArtifactRead,
    IngestResult,
    OcrQueue,
    PageText,
    deep_link,
    listed_views,
)
from kap.documents.search import ChunkHit, search_chunks

__all__ = ["ChunkHit", "search_chunks"]


def _audit(ctx: ProjectContext, action: str, artifact: Artifact, **details: object) -> None:
    ctx.audit(action, "document", artifact.id, name=artifact.name, **details)


def get_artifact(ctx: ProjectContext, artifact_id: uuid.UUID) -> Artifact:
    """A document of the context's project, or 404."""
    artifact = ctx.session.scalar(select(Artifact).where(Artifact.id == artifact_id,
                                                         Artifact.project_id == ctx.project_id))
    if artifact is None:
        raise NotFound("document not found")
    return artifact


# SQLite has one write lock: a sync upload writes its chunks while its file is read for at most
# this long, then waits for the extractor before writing (other writers wait up to 10 s).
SQLITE_LOCK_SECONDS = 2.0


def _find_duplicate(ctx: ProjectContext, sha256: str,
                    other_than: uuid.UUID | None = None) -> Row[uuid.UUID, str] | None:
    """The (id, name) of the project's first top-level document with this content, if any."""
    where = [Artifact.project_id == ctx.project_id, Artifact.sha256 == sha256, Artifact.parent_id.is_(None)]
    if other_than is not None:
        where.append(Artifact.id != other_than)
    return ctx.session.execute(select(Artifact.id, Artifact.name).where(*where)
                               .order_by(Artifact.created_at).limit(1)).first()


def _refuse_duplicate(ctx: ProjectContext, staged: ingest.Staged, other_than: uuid.UUID | None = None) -> None:
    existing = _find_duplicate(ctx, staged.sha256, other_than)
    if existing is not None:
        raise Conflict(f"this file is already in the project as '{existing.name}'", code="duplicate",
                       details={"artifact_id": str(existing.id), "name": existing.name,
                                "link": deep_link(ctx.project_id, existing.id)})


def _release_snapshot(session: Session) -> None:
    """End a read-only transaction before slow work, so the later write starts from a fresh snapshot.

    On SQLite (WAL) a transaction that read before another connection wrote cannot
    start writing; extraction can take seconds, so nothing may be held open across it.
    A transaction that has already written (several uploads in one request) is kept:
    it holds the write lock, so its snapshot cannot go stale.
    """
    if not has_written(session):
        session.rollback()


def upload(ctx: ProjectContext, runtime: Runtime, stream: IO[bytes], filename: str | None, *,
           wait: bool) -> IngestResult:
    """Store an uploaded file and extract it now (`wait`) or in a job; refuse duplicates."""
    staged = ingest.stage(runtime.settings, stream, filename)
    try:
        _refuse_duplicate(ctx, staged)
        artifact = ingest.new_artifact(staged, org_id=ctx.org_id, project_id=ctx.project_id,
                                       uploaded_by=ctx.user_id)
        ingest.store(runtime.storage.artifacts, artifact, staged.path)
        try:
            return _record_upload(ctx, runtime, artifact, staged, wait=wait)
        except BaseException:
            runtime.storage.artifacts.delete(artifact.storage_key)
            raise
    finally:
        staged.cleanup()


def _record_upload(ctx: ProjectContext, runtime: Runtime, artifact: Artifact, staged: ingest.Staged, *,
                   wait: bool) -> IngestResult:
    if not wait:
        ctx.session.add(artifact)
        _audit(ctx, "document.uploaded", artifact, size=artifact.size, kind=artifact.kind, mode="async")
        ctx.session.flush()
        enqueue_after_commit(ctx.session, ingest_artifact, str(artifact.id))
        return IngestResult(document=ArtifactRead.of(artifact))
    _release_snapshot(ctx.session)
    # Only a transaction that holds nothing else may give the lock back: rolling back one that
    # already wrote (several uploads in one request) would lose the earlier files.
    sqlite = ctx.session.get_bind().dialect.name == "sqlite"
    lock_seconds = SQLITE_LOCK_SECONDS if sqlite and not has_written(ctx.session) else None
    with ingest.start_extract(staged.path, artifact.kind) as running:
        _refuse_duplicate(ctx, staged)
        ctx.session.add(artifact)
        ctx.session.flush()
        result = ingest.stream_apply(ctx.session, artifact, running, lock_seconds=lock_seconds)
    tree = ingest.extract_children(runtime.settings, result, 0)
    try:
        _refuse_duplicate(ctx, staged, artifact.id)  # a twin may have landed while this one was extracted
        children, _ = ingest.write_children(ctx.session, runtime.storage.artifacts, artifact, tree)
        _audit(ctx, "document.uploaded", artifact, size=artifact.size, kind=artifact.kind, mode="sync",
               status=artifact.status, children=len(children))
        ctx.session.flush()
    finally:
        ingest.cleanup_tree(tree)
    return IngestResult(document=ArtifactRead.of(artifact), children=[ArtifactRead.of(c) for c in children])


def reingest(ctx: ProjectContext, runtime: Runtime, artifact_id: uuid.UUID) -> IngestResult:
    """Re-extract a stored document (after an extractor upgrade or a restore); bump its version."""
    artifact = get_artifact(ctx, artifact_id)
    if artifact.status in ("queued", "processing"):
        raise Busy("the document is being processed; try again when it is done")
    path = ingest.fetch(runtime.storage.artifacts, artifact, runtime.settings)
    _release_snapshot(ctx.session)
    try:
        tree = ingest.extract_tree(runtime.settings, path, artifact.kind, ingest.depth(ctx.session, artifact))
        artifact = get_artifact(ctx, artifact_id)
        stale_previews = previews_below(artifact, artifact.version)
        artifact.version += 1
        children, replaced = ingest.write_tree(ctx.session, runtime.storage.artifacts, artifact, tree)
        replaced.append(stale_previews)
        ingest.cleanup_tree(tree)
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)
    _audit(ctx, "document.reingested", artifact, version=artifact.version, status=artifact.status)
    ctx.session.flush()
    _delete_files_after_commit(ctx.session, replaced)
    return IngestResult(document=ArtifactRead.of(artifact), children=[ArtifactRead.of(c) for c in children])


def previews_below(artifact: Artifact, version: int | None = None) -> str:
    """The storage prefix of a document's cached page images: all versions, or one."""
    below = f"previews/{artifact.project_id}/{artifact.id}/"
    return below if version is None else f"{below}v{version}/"


def _delete_files_after_commit(session: Session, keys: list[str]) -> None:
    if keys:
        enqueue_after_commit(session, delete_stored_files, keys)


# The columns of the public view: a list reads row tuples through the connection, not ORM
# objects nor the ORM's execution path, with its ids as the text the answer shows. The project
# is the context's.
_READ_COLUMNS = tuple(type_coerce(c, IdText).label(c.key) if c.key in ("id", "parent_id", "uploaded_by")
                      else type_coerce(c, ListText).label(c.key) if c.key == "ocr_pages" else c
                      for c in (Artifact.id, Artifact.parent_id, Artifact.name, Artifact.media_type,
                                Artifact.kind, Artifact.size, Artifact.sha256, Artifact.status,
                                Artifact.status_reason, Artifact.page_count, Artifact.chunk_count,
                                Artifact.ocr_pages, Artifact.version, Artifact.uploaded_by, Artifact.created_at,
                                Artifact.updated_at))
# One statement per filter shape (which of status, type and name are given), built once: building
# a select and its cache key cost more than SQLite's whole query for a page of 50.
_LIST_STATEMENTS: dict[tuple[bool, bool, bool, bool], Select[*tuple[Any, ...]]] = {}


_COUNT_STATEMENTS: dict[tuple[bool, ...], Select[int]] = {}


def _filters(status: bool, kind: bool, name: bool) -> list[Any]:
    where = [Artifact.project_id == bindparam("project_id", type_=Uuid())]
    if status:
        where.append(Artifact.status == bindparam("status", type_=String()))
    if kind:
        where.append(Artifact.kind == bindparam("kind", type_=String()))
    if name:
        where.append(func.lower(Artifact.name).like(bindparam("name", type_=String()), escape="\\"))
    return where


def _list_statement(shape: tuple[bool, bool, bool, bool], count: Select[int]) -> Select[*tuple[Any, ...]]:
    status, kind, name, windowed = shape
    where = _filters(status, kind, name)
    # The page and the total in one statement; a page past the end counts on its own. PostgreSQL
    # counts with a window (one round trip). On SQLite the window cost 0.30 of a page's 0.74 ms,
    # and `count` beside the rows is an uncorrelated subquery, run once (0.012 ms), not once a row.
    total = func.count().over() if windowed else count.scalar_subquery()
    return (select(*_READ_COLUMNS, total.label("total")).where(*where)
            .order_by(Artifact.created_at.desc(), Artifact.id)
            .limit(bindparam("limit", type_=Integer())).offset(bindparam("offset", type_=Integer())))


def _page_query(ctx: ProjectContext, *, status: str | None, kind: str | None, name: str | None, limit: int,
                offset: int, windowed: bool) -> tuple[Select[*tuple[Any, ...]], Select[int], dict[str, Any]]:
    """The statement for one page of the project's documents with their total, the statement that counts
    them alone, and the parameters of both (each statement built once per filter shape)."""
    filters = (bool(status), bool(kind), bool(name))
    count = _COUNT_STATEMENTS.get(filters)
    if count is None:
        count = _COUNT_STATEMENTS.setdefault(filters, select(func.count()).select_from(Artifact)
                                             .where(*_filters(*filters)))
    shape = (*filters, windowed)
    stmt = _LIST_STATEMENTS.get(shape)
    if stmt is None:
        stmt = _LIST_STATEMENTS.setdefault(shape, _list_statement(shape, count))
    params: dict[str, Any] = {"project_id": ctx.project_id, "limit": limit, "offset": offset}
    if status:
        params["status"] = status
    if kind:
        params["kind"] = kind
    if name:
        escaped = name.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params["name"] = f"%{escaped}%"
    return stmt, count, params


def _page(ctx: ProjectContext, *, status: str | None, kind: str | None, name: str | None,
          limit: int, offset: int) -> tuple[list[Any], int]:
    """One page of the project's documents as row tuples, and how many match in all."""
    windowed = ctx.session.get_bind().dialect.name != "sqlite"  # see `_list_statement`
    stmt, count, params = _page_query(ctx, status=status, kind=kind, name=name, limit=limit, offset=offset,
                                      windowed=windowed)
    rows = list(ctx.session.connection().execute(stmt, params).all())
    if rows:
        return rows, int(rows[0].total)
    if not offset:  # nothing at all: no count
        return rows, 0
    return rows, ctx.session.connection().execute(count, params).scalar() or 0  # past the end: counted alone


def list_documents(ctx: ProjectContext, *, status: str | None = None, kind: str | None = None,
                   name: str | None = None, limit: int = 50, offset: int = 0) -> ArtifactList:
    """A page of the project's documents, newest first, filtered by status, type and name."""
    rows, total = _page(ctx, status=status, kind=kind, name=name, limit=limit, offset=offset)
    return ArtifactList(total=total, limit=limit, offset=offset, documents=ArtifactRead.of_rows(ctx.project_id, rows))


def documents_answer(ctx: ProjectContext, *, status: str | None = None, kind: str | None = None,
                     name: str | None = None, limit: int = 50, offset: int = 0) -> dict[str, Any]:
    """`list_documents` as the plain values of its JSON (`ArtifactList`'s fields, in order)."""
    rows, total = _page(ctx, status=status, kind=kind, name=name, limit=limit, offset=offset)
    return _answer(ctx, rows, total, limit, offset)


def _answer(ctx: ProjectContext, rows: Any, total: int, limit: int, offset: int) -> dict[str, Any]:
    return {"ok": True, "total": total, "limit": limit, "offset": offset,
            "documents": listed_views(ctx.project_id, rows)}


# Where the timestamps sit in a listed row: psycopg gives them in the session's zone, the engine in UTC.
_STAMPS = [n for n, c in enumerate(_READ_COLUMNS) if c.key in ("created_at", "updated_at")]


async def documents_answer_on_loop(ctx: ProjectContext, reads: LoopReads, *, status: str | None = None,
                                   kind: str | None = None, name: str | None = None, limit: int = 50,
                                   offset: int = 0) -> dict[str, Any]:
    """`documents_answer` as one read on the event loop (PostgreSQL, see `LoopReads`): the same page,
    total and JSON."""
    assert ctx.user_id is not None
    stmt, count, params = _page_query(ctx, status=status, kind=kind, name=name, limit=limit, offset=offset,
                                      windowed=True)
    rows = await reads.rows(ctx.user_id, *pg_text(stmt, params))
    if rows:
        total = int(rows[0][-1])
    elif not offset:
        total = 0
    else:  # past the end: counted alone
        counted = await reads.first(ctx.user_id, *pg_text(count, params))
        total = int(counted[0]) if counted else 0
    listed = []
    for row in rows:
        values = list(row)
        for n in _STAMPS:
            values[n] = as_utc(values[n])
        listed.append(values)
    return _answer(ctx, listed, total, limit, offset)


def document_detail(ctx: ProjectContext, artifact_id: uuid.UUID) -> ArtifactDetail:
    """A document's metadata, its extracted text by page, and its child documents."""
    artifact = get_artifact(ctx, artifact_id)
    chunks = ctx.session.execute(select(ArtifactChunk.page, ArtifactChunk.locator, ArtifactChunk.text)
                                 .where(ArtifactChunk.artifact_id == artifact.id,
                                        ArtifactChunk.project_id == ctx.project_id)
                                 .order_by(ArtifactChunk.seq)).all()
    pages: list[PageText] = []
    for page, locator, body in chunks:
        if pages and pages[-1].page == page and pages[-1].locator == locator:
            pages[-1].text += "\n" + body
        else:
            pages.append(PageText(page=page, locator=locator, text=body))
    children = [ArtifactRead.of(c) for c in ingest.existing_children(ctx.session, artifact)]
    return ArtifactDetail(**ArtifactRead.of(artifact).model_dump(), pages=pages, children=children)


def open_download(ctx: ProjectContext, runtime: Runtime, artifact_id: uuid.UUID) -> tuple[Artifact, IO[bytes]]:
    """A document and an open stream of its stored bytes."""
    artifact = get_artifact(ctx, artifact_id)
    return artifact, runtime.storage.artifacts.open(artifact.storage_key)


def iter_stream(stream: IO[bytes], size: int = 256 * 1024) -> Iterator[bytes]:
    """Yield a stream's bytes in pieces, closing it at the end."""
    try:
        while piece := stream.read(size):
            yield piece
    finally:
        stream.close()


def delete_document(ctx: ProjectContext, artifact_id: uuid.UUID) -> None:
    """Delete a document, its chunks and its child documents; stored files go after commit."""
    artifact = get_artifact(ctx, artifact_id)
    keys = [artifact.storage_key]
    for child in ingest.existing_children(ctx.session, artifact):
        keys += _keys_below(ctx.session, child)
    _audit(ctx, "document.deleted", artifact, size=artifact.size, children=len(keys) - 1)
    keys.append(previews_below(artifact))
    ctx.session.delete(artifact)
    ctx.session.flush()
    _delete_files_after_commit(ctx.session, keys)


def _keys_below(session: Session, artifact: Artifact) -> list[str]:
    keys = [artifact.storage_key, previews_below(artifact)]
    for child in ingest.existing_children(session, artifact):
        keys += _keys_below(session, child)
    return keys


def ocr_available() -> bool:
    """Whether Tesseract can be run on this machine."""
    return shutil.which("tesseract") is not None


def ocr_queue(ctx: ProjectContext) -> OcrQueue:
    """The project's Needs OCR lane."""
    rows = ctx.session.scalars(select(Artifact).where(Artifact.project_id == ctx.project_id,
                                                      Artifact.status == "needs_ocr")
                               .order_by(Artifact.created_at, Artifact.id))
    return OcrQueue(ocr_available=ocr_available(), documents=[ArtifactRead.of(a) for a in rows])


def _in_lane(ctx: ProjectContext, artifact_id: uuid.UUID) -> Artifact:
    artifact = get_artifact(ctx, artifact_id)
    if artifact.status != "needs_ocr":
        raise Conflict(f"the document is not in the Needs OCR lane (status {artifact.status})", code="not_in_lane")
    return artifact


def resolve_with_text(ctx: ProjectContext, artifact_id: uuid.UUID, body: str) -> ArtifactRead:
    """Store pasted text for the lane's pages; the document becomes ready and searchable."""
    artifact = _in_lane(ctx, artifact_id)
    pages = list(artifact.ocr_pages or [])
    page = pages[0] if len(pages) == 1 else None
    added = ingest.add_ocr_chunks(ctx.session, artifact, [ingest.Segment(body.strip(), page, "Pasted text")])
    _leave_lane(artifact, {"mode": "text", "by": str(ctx.user_id), "pages": pages})
    _audit(ctx, "document.ocr_resolved", artifact, mode="text", pages=pages, chunks=added)
    ctx.session.flush()
    return ArtifactRead.of(artifact)


def _leave_lane(artifact: Artifact, record: dict[str, Any]) -> None:
    artifact.meta = {**(artifact.meta or {}), "ocr": {**record, "at": utcnow().isoformat()}}
    artifact.ocr_pages = []
    artifact.status, artifact.status_reason = "ready", None
    artifact.updated_at = utcnow()


def resolve_with_ocr(ctx: ProjectContext, artifact_id: uuid.UUID) -> ArtifactRead:
    """Queue Tesseract over the lane's pages (409 ocr_unavailable when it is not installed)."""
    if not ocr_available():
        raise Conflict("OCR is not available on this server: install tesseract-ocr, or paste the text",
                       code="ocr_unavailable")
    artifact = _in_lane(ctx, artifact_id)
    artifact.status, artifact.status_reason = "processing", "OCR queued"
    artifact.updated_at = utcnow()
    _audit(ctx, "document.ocr_resolved", artifact, mode="ocr", pages=list(artifact.ocr_pages or []))
    ctx.session.flush()
    enqueue_after_commit(ctx.session, ocr_artifact, str(artifact.id))
    return ArtifactRead.of(artifact)
