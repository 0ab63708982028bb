"""Page images of PDFs and scans, rendered once with pdfium and kept in storage beside the originals."""

from __future__ import annotations

import io
import threading
import uuid

import pypdfium2 as pdfium
from PIL import Image

from kap.core.deps import ProjectContext
from kap.core.errors import NotFound
from kap.core.runtime import Runtime
from kap.documents.models import Artifact
from kap.documents.service import get_artifact, previews_below

WIDTH = 1000  # pixels: sharp enough to read a scan beside its text, small enough to load on a phone
MAX_PAGES = 500
PREVIEW_KINDS = ("pdf", "png", "jpeg", "tiff")
_PDFIUM = threading.Lock()  # pdfium is not thread-safe; page renders are short


def has_pages(artifact: Artifact) -> bool:
    """Whether a document has page images (PDFs and images)."""
    return artifact.kind in PREVIEW_KINDS


def preview_key(artifact: Artifact, page: int) -> str:
    """Where the image of one page of one version is cached."""
    return f"{previews_below(artifact, artifact.version)}p{page}-w{WIDTH}.png"


def page_image(ctx: ProjectContext, runtime: Runtime, artifact_id: uuid.UUID, page: int) -> bytes:
    """The PNG of one page of a document of the caller's project, rendered on first use and cached."""
    artifact = get_artifact(ctx, artifact_id)
    if not has_pages(artifact) or page < 1 or page > max(artifact.page_count or 1, 1) or page > MAX_PAGES:
        raise NotFound("this document has no such page image", code="no_page_image")
    store = runtime.storage.artifacts
    key = preview_key(artifact, page)
    if store.exists(key):
        with store.open(key) as cached:
            return cached.read()
    with store.open(artifact.storage_key) as original:
        data = original.read()
    png = render_pdf_page(data, page) if artifact.kind == "pdf" else render_image(data)
    store.put(key, io.BytesIO(png))
    return png


def render_pdf_page(data: bytes, page: int) -> bytes:
    """Render one page of a PDF to a PNG WIDTH pixels wide."""
    with _PDFIUM:
        pdf = pdfium.PdfDocument(data)
        try:
            if page > len(pdf):
                raise NotFound("this document has no such page image", code="no_page_image")
            sheet = pdf[page - 1]
            scale = WIDTH / max(sheet.get_width(), 1.0)
            image = sheet.render(scale=min(scale, 4.0)).to_pil()
            sheet.close()
        finally:
            pdf.close()
    return _png(image)


def render_image(data: bytes) -> bytes:
    """A scan or photo as a PNG no wider than WIDTH pixels."""
    with Image.open(io.BytesIO(data)) as source:
        source.thumbnail((WIDTH, WIDTH * 4))
        return _png(source.convert("RGB"))


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
