"""Text extractors, one per kind. They run inside the sandbox process (see sandbox.py).

Each extractor yields `Segment`s that remember where their text came from (page,
sheet or slide) and fills an `Outcome` with the page count, the pages that need
OCR and any e-mail attachments (saved to the work folder as child documents).
"""

from __future__ import annotations

import csv
import email
import email.policy
import io
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

MAX_UNZIPPED = 512 * 1024 * 1024
MAX_RATIO = 200
MAX_ZIP_ENTRIES = 20_000
MAX_PIXELS = 60_000_000
MAX_ATTACHMENTS = 50
ROWS_PER_SEGMENT = 20
_WORD = re.compile(r"[^\W_]{2,}", re.UNICODE)


class ExtractionError(Exception):
    """The file cannot be read; the message is shown to people as the failure reason."""


@dataclass
class Segment:
    text: str
    page: int | None = None
    locator: str = ""


@dataclass
class Outcome:
    pages: int = 0
    ocr_pages: list[int] = field(default_factory=list)
    attachments: list[dict[str, str]] = field(default_factory=list)


def is_junk(text: str) -> bool:
    """Whether a page's text is too thin to be the page (a scan with a stray text layer)."""
    count = letters = 0
    for word in _WORD.finditer(text):  # stop as soon as the page has clearly enough words
        count, letters = count + 1, letters + len(word.group())
        if count >= 3 and letters >= 12:
            return False
    return True


def extract(kind: str, path: Path, outcome: Outcome, work: Path) -> Iterator[Segment]:
    """Yield the segments of a file of the given kind."""
    extractors: dict[str, Callable[..., Iterator[Segment]]] = {
        "pdf": _pdf, "docx": _docx, "xlsx": _xlsx, "pptx": _pptx, "eml": _eml, "csv": _csv,
        "md": _plain, "txt": _plain, "html": _html, "png": _image, "jpeg": _image, "tiff": _image,
    }
    if kind not in extractors:
        raise ExtractionError(f"no extractor for {kind}")
    if kind in ("docx", "xlsx", "pptx"):
        check_zip(path)
    yield from extractors[kind](path, outcome, work)


# ---- PDF -------------------------------------------------------------------------------------

def _pdf(path: Path, outcome: Outcome, work: Path) -> Iterator[Segment]:
    import pypdfium2 as pdfium

    try:
        doc = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        message = str(exc).lower()
        if "password" in message:
            raise ExtractionError("the PDF is encrypted (password protected)") from None
        raise ExtractionError(f"the PDF cannot be read ({exc})") from None
    try:
        outcome.pages = len(doc)
        for index in range(len(doc)):
            page = doc[index]
            textpage = page.get_textpage()
            text = textpage.get_text_range()
            textpage.close()
            page.close()
            if is_junk(text):
                outcome.ocr_pages.append(index + 1)
            if text.strip():
                yield Segment(_tidy(text), index + 1, f"Page {index + 1}")
    finally:
        doc.close()


def _tidy(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    return re.sub(r"[ \t]+\n", "\n", text).strip()


# ---- Office (ZIP + XML) ----------------------------------------------------------------------

def check_zip(path: Path) -> None:
    """Refuse archives that declare too much data, compress too well, or carry DTDs."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ExtractionError(f"the archive is damaged ({exc})") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ZIP_ENTRIES:
            raise ExtractionError("the archive has too many entries")
        total = sum(i.file_size for i in infos)
        packed = sum(i.compress_size for i in infos) or 1
        if total > MAX_UNZIPPED or (total > 20 * 1024 * 1024 and total / packed > MAX_RATIO):
            raise ExtractionError("the archive declares a huge uncompressed size (decompression bomb)")
        for info in infos:
            if info.filename.endswith((".xml", ".rels")):
                _check_xml_prolog(archive, info)


def _check_xml_prolog(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """A DTD can only sit before the root element, so reading up to it is enough."""
    import defusedxml.ElementTree as safe_et

    with archive.open(info) as handle:
        head = handle.read(16384)
    upper = head.upper()
    if b"<!DOCTYPE" in upper or b"<!ENTITY" in upper:
        raise ExtractionError("the document contains XML entity declarations (refused)")
    if info.file_size <= 16384:
        try:
            safe_et.fromstring(head)
        except Exception as exc:  # defusedxml raises its own types and ParseError
            raise ExtractionError(f"the document contains invalid XML ({exc.__class__.__name__})") from None


def _docx(path: Path, outcome: Outcome, work: Path) -> Iterator[Segment]:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    document = docx.Document(str(path))
    outcome.pages = 1
    buffer: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Paragraph):
            if block.text.strip():
                buffer.append(block.text.strip())
        elif isinstance(block, Table):
            buffer.extend(_table_rows([[c.text.strip() for c in row.cells] for row in block.rows]))
        if sum(len(line) for line in buffer) > 1500:
            yield Segment("\n".join(buffer), None, "")
            buffer = []
    if buffer:
        yield Segment("\n".join(buffer), None, "")


def _table_rows(rows: list[list[str]]) -> list[str]:
    """Rows as 'Header: value; ...' lines so each row keeps its column names."""
    rows = [r for r in rows if any(cell for cell in r)]
    if not rows:
        return []
    header = [_dedupe(cell) for cell in rows[0]]
    if len(rows) == 1:
        return [" | ".join(header)]
    return [_row_line(header, row) for row in rows[1:]]


def _dedupe(cell: str) -> str:
    return cell.strip()


def _row_line(header: list[str], row: list[Any]) -> str:
    parts = []
    seen: set[tuple[str, str]] = set()
    for i, value in enumerate(row):
        text = _cell(value)
        if not text:
            continue
        name = header[i] if i < len(header) and header[i] else f"Column {i + 1}"
        if (name, text) in seen:  # merged cells repeat themselves
            continue
        seen.add((name, text))
        parts.append(f"{name}: {text}")
    return "; ".join(parts)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        text = value.isoformat()
        return text[:10] if text.endswith("T00:00:00") else text
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _xlsx(path: Path, outcome: Outcome, work: Path) -> Iterator[Segment]:
    import openpyxl

    workbook = openpyxl.load_workbook(str(path), read_only=True, data_only=True)
    try:
        for number, sheet in enumerate(workbook.worksheets, start=1):
            outcome.pages = number
            yield from _sheet_segments(sheet.title, number, sheet.iter_rows(values_only=True))
    finally:
        workbook.close()


def _sheet_segments(title: str, number: int, rows: Iterator[tuple[Any, ...]]) -> Iterator[Segment]:
    """Group rows into segments; every row line carries its header names."""
    prefix = f"Sheet {title}\n" if title else ""
    where = f"Sheet {title}, rows" if title else "Rows"
    header: list[str] | None = None
    lines: list[str] = []
    first = 0
    for index, row in enumerate(rows, start=1):
        if not any(_cell(v) for v in row):
            continue
        if header is None:
            header = [_cell(v) for v in row]
            first = index + 1
            continue
        lines.append(_row_line(header, list(row)))
        if len(lines) >= ROWS_PER_SEGMENT:
            yield Segment(prefix + "\n".join(lines), number, f"{where} {first}-{index}")
            lines, first = [], index + 1
    if lines:
        yield Segment(prefix + "\n".join(lines), number, f"{where} {first}-{index}")
    elif header is not None:
        yield Segment(prefix + " | ".join(h for h in header if h), number, where.removesuffix(", rows"))


def _pptx(path: Path, outcome: Outcome, work: Path) -> Iterator[Segment]:
    from pptx import Presentation

    deck = Presentation(str(path))
    for number, slide in enumerate(deck.slides, start=1):
        outcome.pages = number
        lines = []
        for shape in slide.shapes:
            lines.extend(_shape_lines(shape))
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text.strip()
            if notes:
                lines.append(f"Notes: {notes}")
        text = "\n".join(line for line in lines if line.strip())
        if text:
            yield Segment(text, number, f"Slide {number}")


def _shape_lines(shape: Any) -> list[str]:
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        return [shape.text_frame.text.strip()]
    if getattr(shape, "has_table", False) and shape.has_table:
        return _table_rows([[cell.text.strip() for cell in row.cells] for row in shape.table.rows])
    if hasattr(shape, "shapes"):  # a group
        return [line for inner in shape.shapes for line in _shape_lines(inner)]
    return []


# ---- Text formats ----------------------------------------------------------------------------

def read_text(path: Path, limit: int | None = None) -> str:
    """Decode a text file: UTF-8 (with or without BOM), UTF-16 with BOM, else Latin-1."""
    raw = path.read_bytes() if limit is None else path.open("rb").read(limit)
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16", errors="replace")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _plain(path: Path, outcome: Outcome, work: Path) -> Iterator[Segment]:
    outcome.pages = 1
    text = read_text(path).replace("\r\n", "\n").replace("\x00", "")
    if text.strip():
        yield Segment(text.strip(), None, "")


def _csv(path: Path, outcome: Outcome, work: Path) -> Iterator[Segment]:
    outcome.pages = 1
    text = read_text(path)
    try:
        dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    csv.field_size_limit(10 * 1024 * 1024)
    rows = csv.reader(io.StringIO(text), dialect)
    yield from _sheet_segments("", 1, (tuple(r) for r in rows))


class _TextOnly(HTMLParser):
    SKIP = {"script", "style", "noscript", "template", "head"}
    BREAKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "section"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BREAKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1
        elif tag in self.BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """The visible text of an HTML document."""
    parser = _TextOnly()
    parser.feed(markup)
    parser.close()
    text = "".join(parser.parts)
    text = re.sub(r"[ \t\u00a0]+", " ", text)
    return re.sub(r"\n\s*\n+", "\n\n", text).strip()


def _html(path: Path, outcome: Outcome, work: Path) -> Iterator[Segment]:
    outcome.pages = 1
    text = html_to_text(read_text(path))
    if text:
        yield Segment(text, None, "")


def _eml(path: Path, outcome: Outcome, work: Path) -> Iterator[Segment]:
    with path.open("rb") as handle:
        message = email.message_from_binary_file(handle, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    outcome.pages = 1
    head = [f"{name}: {message[name]}" for name in ("Subject", "From", "To", "Cc", "Date") if message[name]]
    body = _mail_body(message)
    yield Segment("\n".join(head) + ("\n\n" + body if body else ""), None, "Message")
    _save_attachments(message, outcome, work)


def _mail_body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, ValueError):
        payload = part.get_payload(decode=True)
        content = payload.decode("latin-1") if isinstance(payload, bytes) else ""
    if not isinstance(content, str):
        return ""
    return html_to_text(content) if part.get_content_type() == "text/html" else content.strip()


def _save_attachments(message: EmailMessage, outcome: Outcome, work: Path) -> None:
    for index, part in enumerate(message.iter_attachments(), start=1):
        if index > MAX_ATTACHMENTS:
            break
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes) or not payload:
            continue
        target = work / f"attachment-{index}"
        target.write_bytes(payload)
        outcome.attachments.append({"name": part.get_filename() or f"attachment-{index}", "path": str(target)})


# ---- Images and OCR --------------------------------------------------------------------------

def open_image(path: Path) -> Any:
    """Open an image after checking its declared pixel count."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        image = Image.open(path)
        width, height = image.size
    except Image.DecompressionBombError:
        raise ExtractionError(f"the image has more than {MAX_PIXELS:,} pixels (refused)") from None
    except OSError as exc:
        raise ExtractionError(f"the image cannot be read ({exc})") from None
    if width * height > MAX_PIXELS:
        raise ExtractionError(f"the image has {width * height:,} pixels, over the {MAX_PIXELS:,} limit")
    return image


def _image(path: Path, outcome: Outcome, work: Path) -> Iterator[Segment]:
    image = open_image(path)
    outcome.pages = max(1, int(getattr(image, "n_frames", 1)))
    outcome.ocr_pages = list(range(1, outcome.pages + 1))
    image.close()
    return iter(())


def ocr(kind: str, path: Path, pages: list[int], outcome: Outcome) -> Iterator[Segment]:
    """Run Tesseract over the listed pages of a PDF or image."""
    import pytesseract

    for number, image in _page_images(kind, path, pages):
        text = pytesseract.image_to_string(image, timeout=120)
        outcome.pages = max(outcome.pages, number)
        if text.strip():
            yield Segment(_tidy(text), number, f"Page {number} (OCR)")


def _page_images(kind: str, path: Path, pages: list[int]) -> Iterator[tuple[int, Any]]:
    if kind == "pdf":
        import pypdfium2 as pdfium

        doc = pdfium.PdfDocument(str(path))
        try:
            for number in pages:
                if 1 <= number <= len(doc):
                    page = doc[number - 1]
                    width, height = page.get_size()
                    scale = min(300 / 72, (MAX_PIXELS / max(width * height, 1)) ** 0.5)
                    yield number, page.render(scale=scale).to_pil()
        finally:
            doc.close()
        return
    image = open_image(path)
    for number in pages:
        try:
            image.seek(number - 1)
        except EOFError:
            break
        yield number, image.convert("RGB")
