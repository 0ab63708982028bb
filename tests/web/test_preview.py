"""Page images of PDFs and scans: rendered server-side with pdfium, cached in storage, shown beside the text."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from kap.documents import preview
from tests.conftest import FIXTURES, World
from tests.test_web_shell import signed_in


def _upload(client: TestClient, world: World, name: str) -> dict[str, Any]:
    body = (FIXTURES / "northwind" / name).read_bytes()
    sent = client.post("/api/ingest-sync", params={"project_id": str(world.project_a)}, headers=world.h("owner"),
                       files={"file": (name, body)})
    assert sent.status_code == 200, sent.text
    return dict(sent.json()["document"])


def _costly_page_pdf() -> bytes:
    """A one-page PDF with a line of text over four 20,000 x 20,970 pixel images: 5 MB of file,
    5 GB of pixels to decode, about 4 s of CPU to render (one image alone is 0.9 s on a fast core)."""
    chunk = bytes(1024 * 1024)
    pack = zlib.compressobj(9)
    first = pack.compress(chunk) + pack.flush(zlib.Z_FULL_FLUSH)
    repeat = pack.compress(chunk) + pack.flush(zlib.Z_FULL_FLUSH)  # every later MB of zeros packs alike
    count = 1200
    size = count * len(chunk)
    pixels = first + repeat * (count - 1) + pack.flush()[:-4] + struct.pack(">I", ((size % 65521) << 16) | 1)
    width = 20000
    images = 4
    draws = b" ".join(b"q 612 0 0 700 0 0 cm /Im%d Do Q" % n for n in range(images))
    text = b"BT /F1 12 Tf 72 740 Td (Hostile page with very large images) Tj ET " + draws
    image = (b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB /BitsPerComponent 8"
             b" /Filter /FlateDecode /Length %d >>\nstream\n" % (width, size // (width * 3), len(pixels))
             + pixels + b"\nendstream")
    named = b" ".join(b"/Im%d %d 0 R" % (n, 6 + n) for n in range(images))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources"
        b" << /XObject << " + named + b" >> /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        *[image] * images,  # four objects of the same bytes: each is decoded on its own
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_a_page_too_costly_to_render_is_stopped_in_its_own_process(app: Any, client: TestClient, world: World,
                                                                   runtime: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The render runs in the sandbox under its own CPU limit: the costly page is a 404, nothing is
    cached, and the next page renders as usual."""
    monkeypatch.setattr(preview, "PREVIEW_CPU_SECONDS", 1)
    sent = client.post("/api/ingest-sync", params={"project_id": str(world.project_a)}, headers=world.h("owner"),
                       files={"file": ("Hostile.pdf", _costly_page_pdf(), "application/pdf")})
    assert sent.status_code == 200, sent.text
    hostile = sent.json()["document"]
    assert hostile["status"] == "ready", hostile
    good = _upload(client, world, "SOW-2026-014 Northwind Workday.pdf")
    with signed_in(app, world.users["member"]) as browser:
        refused = browser.get(f"/p/{world.project_a}/documents/{hostile['id']}/pages/1.png")
        assert refused.status_code == 404
        assert list(runtime.storage.artifacts.list(f"previews/{world.project_a}/{hostile['id']}/")) == []
        shown = browser.get(f"/p/{world.project_a}/documents/{good['id']}/pages/1.png")
        assert shown.status_code == 200
        assert shown.headers["content-type"] == "image/png"


def test_a_pdf_page_is_rendered_once_and_shown_beside_its_text(app: Any, client: TestClient, world: World,
                                                                runtime: Any) -> None:
    doc = _upload(client, world, "SOW-2026-014 Northwind Workday.pdf")
    base = f"/p/{world.project_a}/documents/{doc['id']}"
    with signed_in(app, world.users["member"]) as browser:
        first = browser.get(f"{base}/pages/1.png")
        assert first.status_code == 200
        assert first.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(first.content)) as image:
            assert image.width == 1000
            assert image.height > 1000
        assert len(list(runtime.storage.artifacts.list(f"previews/{world.project_a}/{doc['id']}/"))) == 1
        assert browser.get(f"{base}/pages/1.png").content == first.content
        assert browser.get(f"{base}/pages/99.png").status_code == 404
        assert browser.get(f"{base}/pages/0.png").status_code == 404
        page = browser.get(base).text
        assert f'src="{base}/pages/1.png"' in page
        assert 'id="page-1"' in page
        assert "Northwind" in page.split('id="page-1"', 1)[1]
    with signed_in(app, world.users["outsider"]) as stranger:
        assert stranger.get(f"{base}/pages/1.png").status_code == 404


def test_a_scan_waiting_for_ocr_shows_its_image_in_the_paste_view(app: Any, client: TestClient,
                                                                  world: World) -> None:
    doc = _upload(client, world, "CR-004 signed scan.png")
    base = f"/p/{world.project_a}/documents/{doc['id']}"
    with signed_in(app, world.users["lead"]) as browser:
        image = browser.get(f"{base}/pages/1.png")
        assert image.status_code == 200
        assert image.content[:8] == b"\x89PNG\r\n\x1a\n"
        lane = browser.get(f"/p/{world.project_a}/ocr").text
        if doc["status"] == "needs_ocr":
            assert f'src="{base}/pages/1.png"' in lane
            assert "Save text" in lane


def test_documents_without_pages_have_no_images(app: Any, client: TestClient, world: World) -> None:
    doc = _upload(client, world, "Test strategy.txt")
    base = f"/p/{world.project_a}/documents/{doc['id']}"
    with signed_in(app, world.users["member"]) as browser:
        assert browser.get(f"{base}/pages/1.png").status_code == 404
        assert "/pages/1.png" not in browser.get(base).text


def test_cached_page_images_go_with_their_version_and_their_document(app: Any, client: TestClient, world: World,
                                                                      runtime: Any) -> None:
    doc = _upload(client, world, "SOW-2026-014 Northwind Workday.pdf")
    base = f"/p/{world.project_a}/documents/{doc['id']}"
    cached = f"previews/{world.project_a}/{doc['id']}/"
    with signed_in(app, world.users["member"]) as browser:
        assert browser.get(f"{base}/pages/1.png").status_code == 200
    assert [k.split("/")[3] for k in runtime.storage.artifacts.list(cached)] == ["v1"]
    again = client.post("/api/reingest-stored", params={"project_id": str(world.project_a), "artifact_id": doc["id"]},
                        headers=world.h("owner"))
    assert again.status_code == 200, again.text
    assert list(runtime.storage.artifacts.list(cached)) == []  # the old version's images were stale
    with signed_in(app, world.users["member"]) as browser:
        assert browser.get(f"{base}/pages/1.png").status_code == 200
    assert [k.split("/")[3] for k in runtime.storage.artifacts.list(cached)] == ["v2"]
    gone = client.delete(f"/api/documents/{doc['id']}", params={"project_id": str(world.project_a)},
                         headers=world.h("owner"))
    assert gone.status_code in (200, 204), gone.text
    assert list(runtime.storage.artifacts.list(cached)) == []
