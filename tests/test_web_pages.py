"""Domain pages served by the web shell: documents, OCR lane, Ask Kap, stages, backups, comms settings."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import World
from tests.test_web_shell import signed_in

PAGES = ["/dashboard", "/documents", "/ocr", "/ask", "/stages", "/backups", "/settings"]


def _open(app: Any, world: World, who: str) -> TestClient:
    return signed_in(app, world.users[who])


def _p(world: World, path: str) -> str:
    return f"/p/{world.project_a}{path}"


def _upload(client: TestClient, world: World, name: str, body: bytes) -> str:
    response = client.post("/api/ingest-sync", params={"project_id": str(world.project_a)},
                           headers=world.h("owner"), files={"file": (name, body, "text/plain")})
    assert response.status_code == 200, response.text
    return str(response.json()["document"]["id"])


def test_every_page_renders_for_the_owner_with_its_nav(app: Any, client: TestClient, world: World) -> None:
    doc = _upload(client, world, "Cutover notes.txt", b"Cutover weekend is 14 March.\n\nGo-live on Monday.")
    with _open(app, world, "owner") as browser:
        for path in PAGES:
            response = browser.get(_p(world, path))
            assert response.status_code == 200, (path, response.text)
            for href in PAGES[:-1]:
                assert f'href="{_p(world, href)}"' in response.text, (path, href)
        listing = browser.get(_p(world, "/documents")).text
        assert f'id="artifact-{doc}"' in listing
        assert 'id="upload-form"' in listing
        assert "Re-ingest" in listing
        text = browser.get(_p(world, f"/documents/{doc}")).text
        assert "Cutover weekend is 14 March." in text
        assert "Download" in text
        dash = browser.get(_p(world, "/dashboard")).text
        for panel in ("recent-documents", "ocr-lane", "stage-progress", "scheduler", "restore-activity"):
            assert f'id="panel-{panel}"' in dash, panel
        assert 'data-testid="scheduler-chip"' in dash
        assert "next window" in dash
        settings = browser.get(_p(world, "/settings")).text
        assert 'id="comms-settings"' in settings
        assert 'id="external-recipients"' in settings


def test_stage_plan_and_signoff_requests_show_on_the_stages_page(app: Any, client: TestClient,
                                                                  world: World) -> None:
    q = {"project_id": str(world.project_a)}
    stage = client.post("/api/stages", params=q, headers=world.h("pm"), json={"title": "Design"}).json()
    sent = client.post(f"/api/stages/{stage['id']}/signoff-requests", params=q, headers=world.h("pm"),
                       json={"email_to": "cfo@client.example", "name": "Dana CFO"})
    assert sent.status_code == 201, sent.text
    with _open(app, world, "pm") as browser:
        page = browser.get(_p(world, "/stages")).text
        assert f'id="stage-{stage["id"]}"' in page
        assert "cfo@client.example" in page
        assert "Revoke" in page
        assert "Request sign-off" in page
        assert "Awaiting sign-off" in page
    with _open(app, world, "member") as browser:
        page = browser.get(_p(world, "/stages")).text
        assert "cfo@client.example" in page
        assert "Revoke" not in page
        assert "Request sign-off" not in page
        assert "Add a stage" not in page


def test_member_is_offered_reading_only(app: Any, client: TestClient, world: World) -> None:
    _upload(client, world, "Test strategy.txt", b"Three test cycles before payroll parallel runs.")
    with _open(app, world, "member") as browser:
        listing = browser.get(_p(world, "/documents")).text
        assert "Test strategy.txt" in listing
        assert 'id="upload-form"' not in listing
        assert "Delete" not in listing
        assert "Re-ingest" not in listing
        assert f'href="{_p(world, "/backups")}"' not in browser.get(_p(world, "/dashboard")).text
        assert browser.get(_p(world, "/backups")).status_code == 403
        settings = browser.get(_p(world, "/settings")).text
        assert 'id="subscriptions"' in settings
        assert 'id="comms-settings"' not in settings
        assert 'id="external-recipients"' not in settings


def test_admin_may_run_backups_but_only_the_owner_restores(app: Any, client: TestClient, world: World) -> None:
    _upload(client, world, "Data conversion plan.txt", b"Three mock conversions before go-live.")
    ran = client.post("/api/backups/run", params={"project_id": str(world.project_a)}, headers=world.h("owner"))
    assert ran.status_code == 200, ran.text
    with _open(app, world, "admin") as browser:
        page = browser.get(_p(world, "/backups")).text
        assert "Back up now" in page
        assert 'id="backup-contents"' in page
        assert "Store + re-ingest" not in page
        assert "restore-form" not in page
    with _open(app, world, "owner") as browser:
        page = browser.get(_p(world, "/backups")).text
        assert "Store + re-ingest" in page
        assert 'id="restore-form"' in page
        assert 'id="restore-replace"' in page
        assert 'value="new" checked' in page


def test_unknown_document_and_backup_read_as_not_found(app: Any, world: World) -> None:
    with _open(app, world, "owner") as browser:
        assert "Document not found" in browser.get(_p(world, f"/documents/{uuid.uuid4()}")).text
        assert "Document not found" in browser.get(_p(world, "/documents/not-an-id")).text
        page = browser.get(_p(world, "/backups"), params={"key": "backups/x/y/20200101.zip"})
        assert page.status_code == 200
        assert "backup not found" in page.text


def test_pages_of_another_tenant_are_a_not_found_page(app: Any, world: World) -> None:
    with _open(app, world, "outsider") as browser:
        for path in PAGES:
            response = browser.get(_p(world, path))
            assert response.status_code == 404, path
            assert "Project not found" in response.text, path
            assert "you are not a member of it" in response.text
