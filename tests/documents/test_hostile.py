"""Bad and hostile input: each is refused or fails cleanly, and the server stays up."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pypdf
import pytest
from fastapi.testclient import TestClient

from kap.documents import sandbox
from kap.documents.detect import clean_name
from kap.qa.samples import pdf_file
from tests.conftest import World
from tests.documents.conftest import CORPUS, upload

DOCX_TEMPLATE = CORPUS / "Kickoff minutes 2026-01-13.docx"
XLSX_TEMPLATE = CORPUS / "RAID log.xlsx"
LAUGHS = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
          + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'
                    for i in range(1, 10))
          + ']>\n')
XXE = '<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'


def _status(response: object) -> tuple[str, str]:
    doc = response.json()["document"]  # type: ignore[attr-defined]
    return doc["status"], doc["status_reason"] or ""


def _replace_part(template: Path, part: str, prefix: str, body_marker: str) -> bytes:
    """Copy an OOXML file with one XML part given a hostile prolog and an entity reference."""
    out = io.BytesIO()
    with zipfile.ZipFile(template) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == part:
                text = data.decode("utf-8")
                text = text.split("?>", 1)[1] if text.startswith("<?xml") else text
                data = (prefix + text.replace(body_marker, body_marker + "&lol9;", 1)).encode()
            dst.writestr(info, data)
    return out.getvalue()


@pytest.fixture
def healthy(client: TestClient, world: World) -> Iterator[None]:
    """After each hostile case the server still ingests a normal file and keeps earlier ones."""
    before = upload(client, world, CORPUS / "Cutover notes.md")
    assert before.status_code == 200
    yield
    after = upload(client, world, CORPUS / "Test strategy.txt")
    assert after.status_code == 200
    assert after.json()["document"]["status"] == "ready"
    listed = client.get("/api/documents", params={"project_id": str(world.project_a)}, headers=world.h("member"))
    names = {d["name"] for d in listed.json()["documents"]}
    assert {"Cutover notes.md", "Test strategy.txt"} <= names
    assert client.get("/healthz").status_code == 200


def test_upload_over_the_limit_is_413_by_length(make_client: Callable[..., TestClient], world: World) -> None:
    small = make_client(kap_max_upload_mb=1)
    response = upload(small, world, "big.txt", content=b"a" * (2 * 1024 * 1024))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_upload_over_the_limit_is_413_while_streaming(make_client: Callable[..., TestClient], world: World) -> None:
    small = make_client(kap_max_upload_mb=1)
    boundary = "kapboundary"

    def body() -> Iterator[bytes]:
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.txt\"\r\n"
               "Content-Type: text/plain\r\n\r\n").encode()
        for _ in range(40):
            yield b"b" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    response = small.post("/api/ingest-sync", params={"project_id": str(world.project_a)},
                          headers={**world.h("lead"), "Content-Type": f"multipart/form-data; boundary={boundary}"},
                          content=body())
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "payload_too_large"


def test_empty_file_is_refused(client: TestClient, world: World, healthy: None) -> None:
    response = upload(client, world, "empty.txt", content=b"")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "empty_file"


@pytest.mark.parametrize(("name", "content", "code"), [
    ("tool.exe", b"MZ\x90\x00" + b"\x00" * 200, "unsupported_type"),
    ("report.pdf", (CORPUS / "CR-004 signed scan.png").read_bytes(), "type_mismatch"),
    ("notes.txt", (CORPUS / "SOW-2026-014 Northwind Workday.pdf").read_bytes(), "type_mismatch"),
    ("sheet.xlsx", (CORPUS / "Kickoff minutes 2026-01-13.docx").read_bytes(), "type_mismatch"),
    ("archive.zip", b"PK\x03\x04" + b"\x00" * 100, "unsupported_type"),
    ("blob", bytes(range(256)) * 8, "unsupported_type"),
    ("mail.eml", b"just some words, no headers at all", "type_mismatch"),
])
def test_unsupported_or_lying_type_is_415(client: TestClient, world: World, healthy: None, name: str,
                                          content: bytes, code: str) -> None:
    response = upload(client, world, name, content=content)
    assert response.status_code == 415, response.text
    assert response.json()["error"]["code"] == code


def test_encrypted_pdf_fails_with_a_reason(client: TestClient, world: World, healthy: None) -> None:
    writer = pypdf.PdfWriter()
    writer.add_blank_page(200, 200)
    writer.encrypt(user_password="secret", owner_password="owner")
    out = io.BytesIO()
    writer.write(out)
    status, reason = _status(upload(client, world, "locked.pdf", content=out.getvalue()))
    assert status == "failed"
    assert "encrypted" in reason


def test_truncated_pdf_fails_cleanly(client: TestClient, world: World, healthy: None) -> None:
    data = (CORPUS / "SOW-2026-014 Northwind Workday.pdf").read_bytes()
    response = upload(client, world, "cut.pdf", content=data[: len(data) // 3])
    assert response.status_code == 200
    status, reason = _status(response)
    assert status in ("failed", "ready", "needs_ocr")
    if status == "failed":
        assert reason


def _pdf_with_stream(stream: bytes) -> bytes:
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R >>",
               b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream"]
    return pdf_file(objects)


def test_pdf_decompression_bomb_fails_within_limits(client: TestClient, world: World, healthy: None,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "MEMORY_LIMIT", 768 * 1024 * 1024)
    monkeypatch.setattr(sandbox, "CPU_SECONDS", 20)
    packer = zlib.compressobj(9)
    piece = b"(AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA) Tj\n" * 1024
    stream = b"".join(packer.compress(piece) for _ in range(20_000)) + packer.flush()
    response = upload(client, world, "bomb.pdf", content=_pdf_with_stream(stream))
    assert response.status_code == 200
    status, reason = _status(response)
    assert status in ("failed", "needs_ocr"), reason
    if status == "failed":
        assert any(word in reason for word in ("allowed", "cannot be read", "stopped", "crashed"))


@pytest.mark.parametrize(("template", "part", "marker", "prolog"), [
    (DOCX_TEMPLATE, "word/document.xml", "<w:body>", LAUGHS),
    (DOCX_TEMPLATE, "word/document.xml", "<w:body>", XXE),
    (XLSX_TEMPLATE, "xl/worksheets/sheet1.xml", "<sheetData>", LAUGHS),
    (XLSX_TEMPLATE, "xl/workbook.xml", "<sheets>", XXE),
], ids=["docx-laughs", "docx-xxe", "xlsx-laughs", "xlsx-xxe"])
def test_xml_entity_tricks_fail_cleanly(client: TestClient, world: World, healthy: None, template: Path,
                                        part: str, marker: str, prolog: str) -> None:
    content = _replace_part(template, part, prolog, marker)
    response = upload(client, world, "hostile" + template.suffix, content=content)
    assert response.status_code == 200, response.text
    status, reason = _status(response)
    assert status == "failed"
    assert "entity" in reason
    assert "root:" not in response.text


def test_zip_with_a_huge_declared_size_fails_cleanly(client: TestClient, world: World, healthy: None) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        archive.writestr("word/document.xml", '<?xml version="1.0"?><w:document/>')
        info = zipfile.ZipInfo("word/media/filler.bin")
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=True) as handle:
            block = b"\x00" * (1024 * 1024)
            for _ in range(600):
                handle.write(block)
    status, reason = _status(upload(client, world, "bomb.docx", content=out.getvalue()))
    assert status == "failed"
    assert "decompression bomb" in reason


def test_image_over_the_pixel_limit_fails(client: TestClient, world: World, healthy: None) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) \
        + chunk(b"IEND", b"")
    status, reason = _status(upload(client, world, "huge.png", content=png))
    assert status == "failed"
    assert "pixels" in reason


@pytest.mark.parametrize(("raw", "expected"), [
    ("../../etc/passwd.txt", "passwd.txt"),
    ("..\\..\\boot.ini.txt", "boot.ini.txt"),
    ("inv\u202eoice\u202c.txt", "invoice.txt"),
    ("a" * 4_000 + ".txt", "a" * 251 + ".txt"),
    ("\u200f\u2066.txt", "txt"),
])
def test_hostile_file_names_are_cleaned(client: TestClient, world: World, raw: str, expected: str) -> None:
    response = upload(client, world, raw, content=f"Text for {len(raw)}".encode())
    assert response.status_code == 200, response.text
    doc = response.json()["document"]
    assert doc["name"] == expected
    assert "/" not in doc["name"]
    assert "\\" not in doc["name"]


def test_a_10000_character_name_is_refused_at_the_edge_or_cut(client: TestClient, world: World) -> None:
    assert clean_name("b" * 10_000 + ".pdf") == "b" * 251 + ".pdf"
    response = upload(client, world, "c" * 10_000 + ".txt", content=b"some text here")
    assert response.status_code in (200, 400), response.text
    if response.status_code == 200:
        assert len(response.json()["document"]["name"]) == 255
    else:
        assert response.json()["error"]["code"] == "bad_request"


def test_nul_bytes_in_a_file_name_are_removed(client: TestClient, world: World) -> None:
    boundary = "kapnul"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\x00b.txt\"\r\n"
            f"Content-Type: text/plain\r\n\r\nhello there world\r\n--{boundary}--\r\n").encode()
    response = client.post("/api/ingest-sync", params={"project_id": str(world.project_a)}, content=body,
                           headers={**world.h("lead"), "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 200, response.text
    assert response.json()["document"]["name"] == "ab.txt"


def test_sandbox_stops_a_runaway_extractor(tmp_path: Path) -> None:
    source = tmp_path / "plain.txt"
    source.write_text("hello world\n" * 2_000_000)  # far longer to read than the 1 ms the limit leaves
    limits = sandbox.Limits(memory=512 * 1024**2, cpu_seconds=60, wall_seconds=0, output_bytes=1024**3)
    result = sandbox.run("text", "txt", source, tmp_path / "out", limits=limits)
    assert not result.ok
    assert "longer than" in (result.reason or "")
