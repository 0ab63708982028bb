"""Decide a file's type from its content and its name together, and clean user file names."""

from __future__ import annotations

import re
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path

from kap.core.errors import UnsupportedMediaType, ValidationFailed

MEDIA_TYPES: dict[str, str] = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "eml": "message/rfc822",
    "csv": "text/csv",
    "md": "text/markdown",
    "txt": "text/plain",
    "html": "text/html",
    "png": "image/png",
    "jpeg": "image/jpeg",
    "tiff": "image/tiff",
}
EXTENSIONS: dict[str, str] = {
    ".pdf": "pdf", ".docx": "docx", ".xlsx": "xlsx", ".pptx": "pptx", ".eml": "eml", ".csv": "csv",
    ".md": "md", ".markdown": "md", ".txt": "txt", ".text": "txt", ".log": "txt", ".html": "html",
    ".htm": "html", ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff",
}
IMAGE_KINDS = ("png", "jpeg", "tiff")
TEXT_KINDS = ("eml", "csv", "md", "txt", "html")
OOXML_MARKERS = {"word/document.xml": "docx", "xl/workbook.xml": "xlsx", "ppt/presentation.xml": "pptx"}
_HEADER_LINE = re.compile(rb"^[A-Za-z][A-Za-z0-9-]{1,60}:[ \t]")
_MAIL_HEADERS = (b"from:", b"to:", b"subject:", b"date:", b"received:", b"message-id:", b"mime-version:",
                 b"return-path:", b"delivered-to:", b"reply-to:", b"cc:", b"content-type:")
_BIDI_AND_CONTROL = re.compile("[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


@dataclass(frozen=True)
class FileType:
    kind: str
    media_type: str


def clean_name(raw: str | None) -> str:
    """A display name: no folders, control or direction-override characters, at most 255 characters."""
    name = unicodedata.normalize("NFC", raw or "")
    name = name.replace("\\", "/").split("/")[-1]
    name = _BIDI_AND_CONTROL.sub("", name).strip().strip(".").strip()
    if not name:
        return "document"
    if len(name) > 255:
        suffix = Path(name).suffix
        suffix = suffix if 1 < len(suffix) <= 16 else ""
        name = name[: 255 - len(suffix)].rstrip() + suffix
    return name


def sniff(head: bytes, path: Path) -> str | None:
    """The kind the bytes say, or None when they match no supported binary signature."""
    if head.startswith(b"%PDF-") or b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if head.startswith(b"PK\x03\x04"):
        return _ooxml_kind(path)
    return None


def _ooxml_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        raise UnsupportedMediaType("the file is a damaged ZIP archive", code="unsupported_type") from None
    for marker, kind in OOXML_MARKERS.items():
        if marker in names:
            return kind
    return "zip"


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return head.startswith((b"\xff\xfe", b"\xfe\xff"))
    try:
        head.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 4:  # a character cut by the sample's end
            return True
    controls = sum(1 for b in head if b < 9 or 13 < b < 32)
    return controls <= len(head) // 100


def _looks_like_mail(head: bytes) -> bool:
    lines = head.lstrip().splitlines()[:12]
    headers = [line for line in lines if _HEADER_LINE.match(line)]
    known = [line for line in headers if line.lower().startswith(_MAIL_HEADERS)]
    return len(headers) >= 2 and len(known) >= 2


def detect(path: Path, name: str) -> FileType:
    """The file's kind and media type; 415 when unsupported or when content and name disagree."""
    with path.open("rb") as handle:
        head = handle.read(8192)
    if not head:
        raise ValidationFailed("the file is empty", code="empty_file")
    if unsupported_name(name):
        raise UnsupportedMediaType(f"files of type {Path(name).suffix.lower()} are not supported",
                                   code="unsupported_type")
    by_content = sniff(head, path)
    by_name = EXTENSIONS.get(Path(name).suffix.lower())
    if by_content == "zip":
        raise UnsupportedMediaType("ZIP archives other than DOCX, XLSX and PPTX are not supported",
                                   code="unsupported_type")
    if by_content is not None:
        if by_name is not None and by_name != by_content:
            raise UnsupportedMediaType(f"the content is {by_content.upper()} but the name says "
                                       f"{by_name.upper()}", code="type_mismatch")
        return FileType(by_content, MEDIA_TYPES[by_content])
    if not _is_text(head):
        raise UnsupportedMediaType("this file type is not supported", code="unsupported_type")
    return FileType(*_text_kind(head, by_name))


def _text_kind(head: bytes, by_name: str | None) -> tuple[str, str]:
    if by_name is None:
        kind = "eml" if _looks_like_mail(head) else "txt"
        return kind, MEDIA_TYPES[kind]
    if by_name not in TEXT_KINDS:
        raise UnsupportedMediaType(f"the content is text but the name says {by_name.upper()}",
                                   code="type_mismatch")
    if by_name == "eml" and not _looks_like_mail(head):
        raise UnsupportedMediaType("the content is not an e-mail message", code="type_mismatch")
    return by_name, MEDIA_TYPES[by_name]


def unsupported_name(name: str) -> bool:
    """Whether the name's extension is one Kap refuses outright."""
    suffix = Path(name).suffix.lower()
    return bool(suffix) and suffix not in EXTENSIONS
