"""One page of a PDF, or a scan, as a PNG WIDTH pixels wide: run inside the extractor sandbox."""

from __future__ import annotations

import io
from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image

from kap.documents.extract import ExtractionError

WIDTH = 1000  # pixels: sharp enough to read a scan beside its text, small enough to load on a phone
NO_SUCH_PAGE = "this document has no such page image"


def page_png(kind: str, path: Path, page: int) -> bytes:
    """The PNG of page `page` of a PDF, or of a scan or photo (which has one page)."""
    return pdf_page(path, page) if kind == "pdf" else image(path)


def pdf_page(path: Path, page: int) -> bytes:
    """Render one page of a PDF to a PNG WIDTH pixels wide."""
    pdf = pdfium.PdfDocument(path)
    try:
        if page > len(pdf):
            raise ExtractionError(NO_SUCH_PAGE)
        sheet = pdf[page - 1]
        scale = WIDTH / max(sheet.get_width(), 1.0)
        picture = sheet.render(scale=min(scale, 4.0)).to_pil()
        sheet.close()
    finally:
        pdf.close()
    return _png(picture)


def image(path: Path) -> bytes:
    """A scan or photo as a PNG no wider than WIDTH pixels."""
    with Image.open(path) as source:
        source.thumbnail((WIDTH, WIDTH * 4))
        return _png(source.convert("RGB"))


def _png(picture: Image.Image) -> bytes:
    out = io.BytesIO()
    picture.save(out, format="PNG", optimize=True)
    return out.getvalue()
