"""Document pages: the list with upload, one document's text by page, and the Needs OCR lane."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from kap.core.deps import ProjectContext, RuntimeDep, visible_projects
from kap.core.errors import NotFound
from kap.core.links import document_link, project_link
from kap.core.permissions import Action
from kap.documents import preview, service
from kap.documents.models import Artifact
from kap.web.pages import legacy_redirect, project_page
from kap.web.registry import Panel, Row, dashboard_panel, nav_item
from kap.web.render import TEMPLATE_DIRS, Page, with_page

router = APIRouter(include_in_schema=False)
TEMPLATES = Path(__file__).parent / "templates"
if TEMPLATES not in TEMPLATE_DIRS:
    TEMPLATE_DIRS.append(TEMPLATES)

nav_item("documents", "Documents", Action.DOCUMENTS_READ, 20)
nav_item("ocr", "Needs OCR", Action.DOCUMENTS_READ, 25)
legacy_redirect(router, "/documents", "documents")
legacy_redirect(router, "/ocr", "ocr")

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
    return {"can_write": ctx.allows(Action.DOCUMENTS_WRITE), "labels": STATUS_LABELS, "human_size": human_size,
            "api_q": f"project_id={ctx.project_id}"}


@router.get("/p/{project_id}/documents")
def documents_page(project_id: str, request: Request, runtime: RuntimeDep, name: str | None = None) -> Response:
    """List the project's documents with upload, re-ingest and delete."""
    def values(ctx: ProjectContext) -> dict[str, Any]:
        listing = service.list_documents(ctx, name=(name or "").strip()[:255] or None, limit=200)
        names = {d.id: d.name for d in listing.documents}
        return {**_common(ctx), "listing": listing, "names": names, "query": name or ""}
    return project_page(request, runtime, project_id, "documents.html", Action.DOCUMENTS_READ, values)


@router.get("/p/{project_id}/documents/{artifact_id}")
def document_page(project_id: str, artifact_id: str, request: Request, runtime: RuntimeDep) -> Response:
    """One document: its metadata and its extracted text grouped by page, sheet or slide."""
    def values(ctx: ProjectContext) -> dict[str, Any]:
        try:
            detail = service.document_detail(ctx, uuid.UUID(artifact_id))
        except (ValueError, NotFound):
            return {**_common(ctx), "doc": None, "status": 404}  # the "Document not found" page
        return {**_common(ctx), "doc": detail, "views": page_views(ctx, detail)}
    return project_page(request, runtime, project_id, "document.html", Action.DOCUMENTS_READ, values)


def page_views(ctx: ProjectContext, doc: Any) -> list[dict[str, Any]]:
    """Each page of a document: its image (PDFs and scans) beside its text."""
    texts = [p for p in doc.pages]
    if doc.kind not in preview.PREVIEW_KINDS:
        return [{"n": p.page or i, "title": p.locator or (f"Page {p.page}" if p.page else "Text"), "text": p.text,
                 "image": None} for i, p in enumerate(texts, start=1)]
    by_page = {p.page: p.text for p in texts if p.page}
    count = min(max(doc.page_count or 1, max(by_page, default=1)), preview.MAX_PAGES)
    base = document_link(ctx.project_id, doc.id)
    return [{"n": n, "title": f"Page {n}", "text": by_page.get(n), "image": f"{base}/pages/{n}.png"}
            for n in range(1, count + 1)]


@router.get("/p/{project_id}/documents/{artifact_id}/pages/{page}.png")
def page_image(project_id: str, artifact_id: str, page: int, request: Request, runtime: RuntimeDep) -> Response:
    """The image of one page of a PDF or scan, rendered server-side and cached in storage."""
    def build(p: Page, session: Session) -> Response:
        assert p.ctx is not None
        try:
            png = preview.page_image(p.ctx, runtime, uuid.UUID(artifact_id), page)
        except (ValueError, NotFound):
            return Response(status_code=404)
        return Response(png, media_type="image/png",
                        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"})
    return with_page(request, runtime, build, project_id=project_id, action=Action.DOCUMENTS_READ)


@router.get("/documents/{artifact_id}")
def old_document_link(artifact_id: str, request: Request, runtime: RuntimeDep) -> Response:
    """An old document link without its project: find the document's project and go there."""
    def build(page: Page, session: Session) -> Response:
        assert page.identity is not None
        try:
            wanted = uuid.UUID(artifact_id)
        except ValueError:
            return page.render("missing.html", status=404)
        pid = session.scalar(select(Artifact.project_id).where(
            Artifact.id == wanted, Artifact.project_id.in_(visible_projects(page.identity))))
        if pid is None:
            return page.render("missing.html", status=404)
        return RedirectResponse(document_link(pid, wanted), status_code=303)
    return with_page(request, runtime, build)


@router.get("/p/{project_id}/ocr")
def ocr_page(project_id: str, request: Request, runtime: RuntimeDep) -> Response:
    """The Needs OCR lane with its two ways out: run OCR, or paste the text."""
    def values(ctx: ProjectContext) -> dict[str, Any]:
        return {**_common(ctx), "queue": service.ocr_queue(ctx)}
    return project_page(request, runtime, project_id, "ocr.html", Action.DOCUMENTS_READ, values)


@dashboard_panel(order=20, action=Action.DOCUMENTS_READ)
def recent_documents_panel(ctx: ProjectContext) -> Panel | None:
    """The newest documents, each opening its row in Documents."""
    listing = service.list_documents(ctx, limit=6)
    rows = [Row(text=d.name, href=d.link, meta=STATUS_LABELS.get(d.status, d.status)) for d in listing.documents]
    return Panel(id="recent-documents", title="Recent documents", rows=rows, chip=f"{listing.total} in total",
                 empty="No documents yet.")


@dashboard_panel(order=25, action=Action.DOCUMENTS_READ)
def ocr_lane_panel(ctx: ProjectContext) -> Panel | None:
    """How many documents wait in the Needs OCR lane."""
    queue = service.ocr_queue(ctx)
    count = len(queue.documents)
    lane = project_link(ctx.project_id, "ocr")
    rows = [Row(text=d.name, href=lane, meta=f"pages {', '.join(map(str, d.ocr_pages)) or '?'}")
            for d in queue.documents[:5]]
    return Panel(id="ocr-lane", title="Needs OCR", chip=f"{count} waiting", rows=rows,
                 empty="Nothing waits for OCR.")
