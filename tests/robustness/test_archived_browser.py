"""An archived project and its paused sign-off link in Chromium, on a phone and on a desktop.

A real `kap serve` on loopback; what a person sees is measured: the banner and the paused page
are on screen, readable (contrast >= 4.5:1), nothing scrolls sideways at 390 px, no change
control is offered; Unarchive brings the project and the same link back.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import PG_ADMIN_URL, TEST_DB
from tests.web.conftest import Server, shot, start_server
from tests.web.ui import Watch, contrast

pytestmark = pytest.mark.slow
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1440, "height": 900}}
PAUSED = "This sign-off is paused while the project is archived."


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    name = f"kap_archived_{uuid.uuid4().hex[:12]}"
    env: dict[str, str] = {}
    if TEST_DB == "postgresql":
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        env = {"KAP_DATABASE_URL": f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}", "KAP_AUTO_MIGRATE": "1"}
    running = start_server(tmp_path, **env)
    try:
        yield running
    finally:
        running.stop()
        if TEST_DB == "postgresql":
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _archived_project(server: Server, owner: uuid.UUID, org: uuid.UUID) -> dict[str, str]:
    """A project with a document and a stage out for sign-off, then archived."""
    headers = {"X-Dev-User": str(owner), "X-Dev-Org": str(org), "X-Dev-Role": "owner"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        project = http.post("/api/projects", json={"name": "Northwind Workday"}).json()["id"]
        q = {"project_id": project}
        up = http.post("/api/ingest-sync", params=q,
                       files={"file": ("Test strategy.txt", b"Payroll parallel runs start in May.", "text/plain")})
        assert up.status_code == 200, up.text
        stage = http.post("/api/stages", params=q, json={"title": "Design", "summary": "Core HR design."}).json()
        asked = http.post(f"/api/stages/{stage['id']}/signoff-requests", params=q,
                          json={"email_to": "dana@northwind.example", "name": "Dana Sponsor"})
        assert asked.status_code == 201, asked.text
        assert http.delete(f"/api/projects/{project}").status_code == 200
    return {"project": project, "link": asked.json()["token_link"]}


def _sign_in(context: Any, server: Server, user: uuid.UUID, org: uuid.UUID) -> Any:
    page = context.new_page()
    page.goto(f"{server.url}/login")
    page.get_by_label("User id").fill(str(user))
    page.get_by_label("Org id (optional)").fill(str(org))
    page.get_by_role("button", name="Sign in (dev)").click()
    page.wait_for_url(f"{server.url}/")
    return page


def _readable(page: Any, locator: Any, name: str) -> None:
    """On screen, inside the viewport, contrast >= 4.5:1, and the page does not scroll sideways."""
    locator.wait_for(state="visible", timeout=20_000)
    box = locator.bounding_box()
    width = page.viewport_size["width"]
    assert box, name
    assert box["x"] >= 0, (name, box)
    assert box["x"] + box["width"] <= width + 1, (name, box)
    ratio = contrast(locator)
    assert ratio >= 4.5, (name, ratio)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, (name, overflow)


def test_archived_project_and_paused_link_on_a_phone_and_a_desktop(browser: Any, server: Server) -> None:
    owner, org = uuid.uuid4(), uuid.uuid4()
    made = _archived_project(server, owner, org)
    project, link = made["project"], made["link"]
    for label, viewport in VIEWPORTS.items():
        context = browser.new_context(viewport=viewport)
        try:
            page = _sign_in(context, server, owner, org)
            watch = Watch()
            watch.attach(page)
            page.goto(f"{server.url}/p/{project}/dashboard")
            banner = page.locator("#archived-banner")
            _readable(page, banner, f"banner-{label}")
            assert "Archived." in banner.inner_text()
            unarchive = banner.get_by_role("button", name="Unarchive")
            _readable(page, unarchive, f"unarchive-{label}")
            shot(page, f"archived-dashboard-{label}")

            page.goto(f"{server.url}/p/{project}/documents")
            _readable(page, page.locator("#archived-banner"), f"documents-banner-{label}")
            assert page.get_by_text("Test strategy.txt").first.is_visible()
            assert page.locator("input[type=file]").count() == 0  # no upload control
            assert page.get_by_role("button", name="Delete").count() == 0
            page.goto(f"{server.url}/p/{project}/stages")
            assert page.get_by_text("Design").first.is_visible()
            assert page.locator("form[data-api^='POST /api/stages']").count() == 0
            shot(page, f"archived-stages-{label}")
            assert watch.take() == ([], [])

            signer = context.new_page()
            signer.goto(link)
            _readable(signer, signer.get_by_text(PAUSED), f"paused-{label}")
            assert signer.get_by_role("button", name="Record my decision").count() == 0
            shot(signer, f"signoff-paused-{label}")
        finally:
            context.close()

    context = browser.new_context(viewport=VIEWPORTS["phone"])
    try:
        page = _sign_in(context, server, owner, org)
        page.goto(f"{server.url}/p/{project}/dashboard")
        page.get_by_role("button", name="Unarchive").click()
        page.wait_for_function("() => !document.getElementById('archived-banner')", timeout=20_000)
        page.goto(f"{server.url}/p/{project}/documents")
        assert page.locator("input[type=file]").count() == 1  # the upload control is back

        signer = context.new_page()
        signer.goto(link)
        signer.get_by_label("Approve").check()
        signer.get_by_label("Your name").fill("Dana Sponsor")
        signer.get_by_role("button", name="Record my decision").click()
        signer.wait_for_load_state("networkidle")
        assert signer.locator("h1").inner_text() == "Thank you"
        shot(signer, "signoff-after-unarchive-phone")
    finally:
        context.close()
