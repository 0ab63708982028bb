"""Page previews for the signer's page: PDF pages as PNG images, other documents as a text excerpt.

Kept small and self-contained so a shared documents preview module can replace it.
"""

from __future__ import annotations

import struct
import threading
import uuid
import zlib

import pypdfium2 as pdfium
from sqlalchemy import select
from sqlalchemy.orm import Session

from kap.documents.models import ArtifactChunk

MAX_PREVIEW_PAGES = 3
PREVIEW_WIDTH = 900
EXCERPT_CHARS = 1200
# PDFium is not thread-safe; requests run in a thread pool.
_PDFIUM = threading.Lock()


def pdf_page_count(data: bytes) -> int:
    """How many pages a PDF has (0 when it cannot be read)."""
    with _PDFIUM:
        try:
            doc = pdfium.PdfDocument(data)
        except pdfium.PdfiumError:
            return 0
        try:
            return len(doc)
        finally:
            doc.close()


def pdf_page_png(data: bytes, page: int, width: int = PREVIEW_WIDTH) -> bytes | None:
    """One page (0-based) of a PDF as a PNG about `width` pixels wide, or None when it has no such page."""
    with _PDFIUM:
        try:
            doc = pdfium.PdfDocument(data)
        except pdfium.PdfiumError:
            return None
        try:
            if not 0 <= page < len(doc):
                return None
            pdf_page = doc[page]
            scale = width / max(pdf_page.get_width(), 1.0)
            bitmap = pdf_page.render(scale=min(scale, 4.0), rev_byteorder=True)
            return encode_png(bytes(bitmap.buffer), bitmap.width, bitmap.height, bitmap.stride,
                              bitmap.n_channels)
        finally:
            doc.close()


def encode_png(pixels: bytes, width: int, height: int, stride: int, channels: int) -> bytes:
    """A PNG of 8-bit RGB or RGBA rows (no extra imaging library needed)."""
    color_type = {3: 2, 4: 6}[channels]
    raw = b"".join(b"\x00" + pixels[y * stride:y * stride + width * channels] for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def text_excerpt(session: Session, project_id: uuid.UUID, artifact_id: uuid.UUID,
                 limit: int = EXCERPT_CHARS) -> str:
    """The start of a document's extracted text, for documents without page images."""
    texts = session.scalars(select(ArtifactChunk.text).where(
        ArtifactChunk.project_id == project_id, ArtifactChunk.artifact_id == artifact_id)
        .order_by(ArtifactChunk.seq).limit(20))
    excerpt = ""
    for text in texts:
        excerpt += text.strip() + "\n\n"
        if len(excerpt) >= limit:
            break
    excerpt = excerpt.strip()
    return excerpt if len(excerpt) <= limit else excerpt[:limit].rstrip() + "…"
