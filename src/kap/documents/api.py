"""Document, OCR-lane and search routes (paths from the product brief)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile, status
from fastapi.responses import JSONResponse, Response, StreamingResponse

from kap.core.db import loop_reads
from kap.core.deps import (
    ActionDependency,
    ProjectContext,
    RuntimeDep,
    optional_identity,
    request_address,
    require,
    resolve_project,
    service_context,
)
from kap.core.errors import Busy, Conflict, NotFound, Unauthorized, UnsupportedMediaType, ValidationFailed, raises
from kap.core.http import attachment_headers, content_types
from kap.core.permissions import ACTIONS, Action
from kap.core.routes import AnswerInThread, json_answer, read_on_loop
from kap.core.schemas import Ok
from kap.core.security import Identity
from kap.documents import service
from kap.documents.schemas import (
    ArtifactDetail,
    ArtifactList,
    ArtifactRead,
    IngestResult,
    OcrQueue,
    OcrResolve,
    SearchHit,
    SearchResult,
    Status,
)
from kap.documents.search import search_chunks

router = APIRouter(prefix="/api", tags=["documents"], route_class=AnswerInThread)

DocumentsRead = Annotated[ProjectContext, require(Action.DOCUMENTS_READ)]
# The list reads its page after the access check, on its own (on the event loop on PostgreSQL).
DocumentsList = Annotated[ProjectContext, require(Action.DOCUMENTS_READ, reach_only=True)]
DocumentsWrite = Annotated[ProjectContext, require(Action.DOCUMENTS_WRITE)]
SearchRead = Annotated[ProjectContext, require(Action.SEARCH_READ)]
Upload = Annotated[UploadFile, File(description="The file to ingest.")]


class WriteOrInternal(ActionDependency):
    """`documents.write` for users; the INTERNAL_API_BEARER may also ingest into a named project."""

    def __call__(self, request: Request, project_id: uuid.UUID,  # type: ignore[override]
                 runtime: RuntimeDep,
                 identity: Annotated[Identity | None, Depends(optional_identity)]) -> Iterator[ProjectContext]:
        if identity is None:
            raise Unauthorized()
        runtime.ensure_schema()
        internal = identity.is_internal
        session = runtime.db.service_session() if internal else runtime.db.app_session(identity.user_id)
        try:
            ctx = self._context(request, runtime, session, identity, project_id)
            yield ctx
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def _context(self, request: Request, runtime: Any, session: Any, identity: Identity,
                 project_id: uuid.UUID) -> ProjectContext:
        ip, agent = request_address(request, runtime), request.headers.get("user-agent")
        if identity.is_internal:
            ctx = service_context(session, identity, project_id, purpose="internal-bearer",
                                  role=ACTIONS[self.action], ip=ip, user_agent=agent)
        else:
            ctx = resolve_project(session, identity, project_id, ip=ip, user_agent=agent)
        self.authorise(request, ctx)
        return ctx


IngestAccess = Annotated[ProjectContext, Depends(WriteOrInternal(Action.DOCUMENTS_WRITE), scope="function")]


@router.post("/ingest-sync")
@raises(Conflict, UnsupportedMediaType, ValidationFailed)
def ingest_sync(ctx: IngestAccess, file: Upload, runtime: RuntimeDep) -> IngestResult:
    """Upload a file and return once it is ready, in the Needs OCR lane, or failed."""
    return service.upload(ctx, runtime, file.file, file.filename, wait=True)


@router.post("/ingest", status_code=status.HTTP_202_ACCEPTED)
@raises(Conflict, UnsupportedMediaType, ValidationFailed)
def ingest_async(ctx: DocumentsWrite, file: Upload, runtime: RuntimeDep) -> IngestResult:
    """Upload a file and queue its extraction; answers 202 with the queued document."""
    return service.upload(ctx, runtime, file.file, file.filename, wait=False)


@router.post("/reingest-stored")
@raises(Busy, NotFound)
def reingest_stored(ctx: DocumentsWrite, artifact_id: uuid.UUID, runtime: RuntimeDep) -> IngestResult:
    """Re-extract a stored document without uploading it again."""
    return service.reingest(ctx, runtime, artifact_id)


async def _list_documents_on_loop(ctx: DocumentsList, status: Status | None = None, type: str | None = None,
                                  name: str | None = None, limit: int = 50, offset: int = 0) -> Response:
    reads = loop_reads(ctx.session)
    assert reads is not None
    return json_answer(await service.documents_answer_on_loop(ctx, reads, status=status, kind=type, name=name,
                                                              limit=limit, offset=offset))


@router.get("/documents", response_model=ArtifactList)
@read_on_loop(postgres=_list_documents_on_loop)
def list_documents(ctx: DocumentsList, status: Status | None = None,
                   type: Annotated[str | None, Query(max_length=20)] = None,
                   name: Annotated[str | None, Query(max_length=255)] = None,
                   limit: Annotated[int, Query(ge=1, le=200)] = 50,
                   offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> Response:
    """List the project's documents, filtered by status, type and name."""
    return json_answer(service.documents_answer(ctx, status=status, kind=type, name=name, limit=limit,
                                                offset=offset))


@router.get("/documents/{artifact_id}")
def get_document(ctx: DocumentsRead, artifact_id: uuid.UUID) -> ArtifactDetail:
    """A document's metadata and its extracted text by page."""
    return service.document_detail(ctx, artifact_id)


@router.get("/documents/{artifact_id}/download", response_model=None, responses=content_types("*/*"))
def download_document(ctx: DocumentsRead, artifact_id: uuid.UUID, runtime: RuntimeDep) -> StreamingResponse:
    """The stored file, as an attachment."""
    artifact, stream = service.open_download(ctx, runtime, artifact_id)
    return StreamingResponse(service.iter_stream(stream), media_type=artifact.media_type,
                             headers=attachment_headers(artifact.name, artifact.size))


@router.delete("/documents/{artifact_id}")
@raises(Busy)
def delete_document(ctx: DocumentsWrite, artifact_id: uuid.UUID) -> Ok:
    """Delete a document with its chunks and attachments."""
    service.delete_document(ctx, artifact_id)
    return Ok()


@router.get("/ocr/queue")
def ocr_queue(ctx: DocumentsRead) -> OcrQueue:
    """The Needs OCR lane: documents with pages that have no text."""
    return service.ocr_queue(ctx)


@router.post("/ocr/resolve", response_model=ArtifactRead,
             responses={202: {"model": ArtifactRead, "description": "OCR queued as a job"}})
@raises(Conflict, NotFound)
def ocr_resolve(ctx: DocumentsWrite, artifact_id: uuid.UUID, body: OcrResolve) -> ArtifactRead | JSONResponse:
    """Resolve a lane document by OCR (a job; 202) or with pasted text (200)."""
    if body.mode == "text":
        assert body.text is not None
        return service.resolve_with_text(ctx, artifact_id, body.text)
    queued = service.resolve_with_ocr(ctx, artifact_id)
    return JSONResponse(queued.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)


@router.get("/search")
@raises(ValidationFailed)
def search(ctx: SearchRead, q: Annotated[str, Query(min_length=1, max_length=500)],
           limit: Annotated[int, Query(ge=1, le=50)] = 10,
           match: Literal["all", "any", "auto"] = "auto") -> SearchResult:
    """Ranked chunks of the project that match `q`, with highlighted snippets and deep links."""
    used: Literal["all", "any"] = "any" if match == "any" else "all"
    hits = search_chunks(ctx, q, limit, match=used)
    if not hits and match == "auto":
        used, hits = "any", search_chunks(ctx, q, limit, match="any")
    return SearchResult(query=q, match=used, hits=[SearchHit(chunk_id=h.chunk_id, artifact_id=h.artifact_id,
                                                             name=h.artifact_name, page=h.page, locator=h.locator,
                                                             snippet=h.snippet, score=h.score,
                                                             link=h.link(ctx.project_id))
                                                   for h in hits])
