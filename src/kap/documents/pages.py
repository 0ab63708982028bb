"""Document pages: the list with upload, one document's text by page, and the Needs OCR lane."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kap.core.deps import ProjectContext, RuntimeDep
from kap.core.errors import NotFound
from kap.documents import service
from kap.web.pages import project_page
from kap.web.registry import Panel, Row, dashboard_panel, nav_item
from kap.web.render import TEMPLATE_DIRS

router = APIRouter(include_in_schema=False)
TEMPLATES = Path(__file__).parent / "templates"
if TEMPLATES not in TEMPLATE_DIRS:
    TEMPLATE_DIRS.append(TEMPLATES)

nav_item("/documents", "Documents", "documents.read", 20)
nav_item("/ocr", "Needs OCR", "documents.read", 25)

STATUS_LABELS = {"queued": "Queued", "processing": "Processing", "ready": "Ready", "needs_ocr": "Needs OCR",
                 "failed": "Failed"}


def human_size(size: int) -> str:
    """A byte count as people read it."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _common(ctx: ProjectContext) -> dict[str, Any]:
    return {"can_write": ctx.allows("documents.write"), "labels": STATUS_LABELS, "human_size": human_size,
            "api_q": f"project_id={ctx.project_id}"}


@router.get("/documents")
def documents_page(request: Request, runtime: RuntimeDep, name: str | None = None) -> Response:
    """List the project's documents with upload, re-ingest and delete."""
    def values(ctx: ProjectContext) -> dict[str, Any]:
        listing = service.list_documents(ctx, name=(name or "").strip()[:255] or None, limit=200)
        names = {d.id: d.name for d in listing.documents}
        return {**_common(ctx), "listing": listing, "names": names, "query": name or ""}
    return project_page(request, runtime, "documents.html", "documents.read", values)


@router.get("/documents/{artifact_id}")
def document_page(artifact_id: str, request: Request, runtime: RuntimeDep) -> Response:
    """One document: its metadata and its extracted text grouped by page, sheet or slide."""
    def values(ctx: ProjectContext) -> dict[str, Any]:
        try:
            detail = service.document_detail(ctx, uuid.UUID(artifact_id))
        except (ValueError, NotFound):
            return {**_common(ctx), "doc": None}
        return {**_common(ctx), "doc": detail}
    return project_page(request, runtime, "document.html", "documents.read", values)


@router.get("/ocr")
def ocr_page(request: Request, runtime: RuntimeDep) -> Response:
    """The Needs OCR lane with its two ways out: run OCR, or paste the text."""
    def values(ctx: ProjectContext) -> dict[str, Any]:
        return {**_common(ctx), "queue": service.ocr_queue(ctx)}
    return project_page(request, runtime, "ocr.html", "documents.read", values)


@dashboard_panel(order=20)
def recent_documents_panel(ctx: ProjectContext) -> Panel | None:
    """The newest documents, each opening its row in Documents."""
    if not ctx.allows("documents.read"):
        return None
    listing = service.list_documents(ctx, limit=6)
    rows = [Row(text=d.name, href=d.link, meta=STATUS_LABELS.get(d.status, d.status)) for d in listing.documents]
    return Panel(id="recent-documents", title="Recent documents", rows=rows, chip=f"{listing.total} in total",
                 empty="No documents yet.")


@dashboard_panel(order=25)
def ocr_lane_panel(ctx: ProjectContext) -> Panel | None:
    """How many documents wait in the Needs OCR lane."""
    if not ctx.allows("documents.read"):
        return None
    queue = service.ocr_queue(ctx)
    count = len(queue.documents)
    rows = [Row(text=d.name, href="/ocr", meta=f"pages {', '.join(map(str, d.ocr_pages)) or '?'}")
            for d in queue.documents[:5]]
    return Panel(id="ocr-lane", title="Needs OCR", chip=f"{count} waiting", rows=rows,
                 empty="Nothing waits for OCR.")
