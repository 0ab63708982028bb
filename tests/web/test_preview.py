"""Page images of PDFs and scans: rendered server-side with pdfium, cached in storage, shown beside the text."""

from __future__ import annotations

import io
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import FIXTURES, World
from tests.test_web_shell import signed_in


def _upload(client: TestClient, world: World, name: str) -> dict[str, Any]:
    body = (FIXTURES / "northwind" / name).read_bytes()
    sent = client.post("/api/ingest-sync", params={"project_id": str(world.project_a)}, headers=world.h("owner"),
                       files={"file": (name, body)})
    assert sent.status_code == 200, sent.text
    return dict(sent.json()["document"])


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
