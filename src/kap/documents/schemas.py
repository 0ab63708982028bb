"""Request and response shapes for documents, the OCR lane and search."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, model_validator

from kap.core.links import document_link
from kap.core.schemas import Strict
from kap.documents.models import Artifact

Status = Literal["queued", "processing", "ready", "needs_ocr", "failed"]


def deep_link(project_id: uuid.UUID | str, artifact_id: uuid.UUID | str, page: int | None = None) -> str:
    """The stable page link of a document, carrying its project."""
    return document_link(project_id, artifact_id, page)


class ArtifactUpdate(Strict):
    """Fields a lead may change on a document (reserved; none are editable yet)."""


class OcrResolve(Strict):
    mode: Literal["ocr", "text"]
    text: str | None = Field(default=None, max_length=2_000_000)

    @model_validator(mode="after")
    def _text_for_text_mode(self) -> OcrResolve:
        if self.mode == "text" and not (self.text and self.text.strip()):
            raise ValueError("mode 'text' needs a non-empty text")
        if self.mode == "ocr" and self.text is not None:
            raise ValueError("mode 'ocr' takes no text")
        return self


class ArtifactRead(BaseModel):
    id: uuid.UUID
    project_id: uuid.UUID
    parent_id: uuid.UUID | None
    name: str
    media_type: str
    kind: str
    size: int
    sha256: str
    status: Status
    status_reason: str | None
    page_count: int
    chunk_count: int
    ocr_pages: list[int]
    version: int
    uploaded_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    link: str

    @classmethod
    def of(cls, artifact: Artifact) -> ArtifactRead:
        """Build the public view of an artifact row."""
        return cls(id=artifact.id, project_id=artifact.project_id, parent_id=artifact.parent_id,
                   name=artifact.name, media_type=artifact.media_type, kind=artifact.kind, size=artifact.size,
                   sha256=artifact.sha256, status=artifact.status,
                   status_reason=artifact.status_reason, page_count=artifact.page_count,
                   chunk_count=artifact.chunk_count, ocr_pages=list(artifact.ocr_pages or []),
                   version=artifact.version, uploaded_by=artifact.uploaded_by, created_at=artifact.created_at,
                   updated_at=artifact.updated_at, link=deep_link(artifact.project_id, artifact.id))

    @classmethod
    def of_rows(cls, project_id: uuid.UUID, rows: Iterable[Sequence[Any]]) -> list[ArtifactRead]:
        """Build the public view of listed rows (`listed_views`) in one validation: pydantic's
        core builds the whole list, not one Python call per row."""
        return _ROWS.validate_python(listed_views(project_id, rows))


def listed_views(project_id: uuid.UUID, rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    """The public view of listed rows as plain values in the fields' order, ready to serialise.

    Each row holds the list's columns in `ArtifactRead`'s order without `project_id` (the
    context's) and `link`, as the database typed them (aware datetimes; ids as `uuid.UUID` or
    the text the JSON shows), and may end with more columns (a window count).
    """
    project = str(project_id)  # once, not once a row
    links = deep_link(project, "")  # every link is this prefix and the document's id
    views = []
    for row in rows:
        artifact = str(row[0])  # the text again when read as text
        views.append({"id": artifact, "project_id": project, "parent_id": row[1], "name": row[2],
                      "media_type": row[3], "kind": row[4], "size": row[5], "sha256": row[6], "status": row[7],
                      "status_reason": row[8], "page_count": row[9], "chunk_count": row[10],
                      "ocr_pages": row[11] or [], "version": row[12], "uploaded_by": row[13],
                      "created_at": row[14], "updated_at": row[15], "link": links + artifact})
    return views


_ROWS: TypeAdapter[list[ArtifactRead]] = TypeAdapter(list[ArtifactRead])


class PageText(BaseModel):
    page: int | None
    locator: str
    text: str


class ArtifactDetail(ArtifactRead):
    pages: list[PageText]
    children: list[ArtifactRead]


class ArtifactList(BaseModel):
    ok: bool = True
    total: int
    limit: int
    offset: int
    documents: list[ArtifactRead]


class IngestResult(BaseModel):
    ok: bool = True
    duplicate: bool = False
    document: ArtifactRead
    children: list[ArtifactRead] = []


class OcrQueue(BaseModel):
    ok: bool = True
    ocr_available: bool
    documents: list[ArtifactRead]


class SearchHit(BaseModel):
    chunk_id: uuid.UUID
    artifact_id: uuid.UUID
    name: str
    page: int | None
    locator: str
    snippet: str
    score: float
    link: str


class SearchResult(BaseModel):
    ok: bool = True
    query: str
    match: Literal["all", "any"]
    hits: list[SearchHit]
