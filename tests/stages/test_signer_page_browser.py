"""The signer's page in Chromium, on a phone and on a desktop: readable, no overflow, documents visible."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.raid.test_review_browser import CONTRAST_JS
from tests.web.conftest import Server, shot, start_server

pytestmark = pytest.mark.slow
CORPUS = Path(__file__).parents[1] / "fixtures" / "northwind"
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1440, "height": 900}}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = start_server(tmp_path)
    yield running
    running.stop()


def _links(server: Server, count: int) -> tuple[list[str], dict[str, Any]]:
    """A project with two documents on a stage, and `count` sign-off links for it (one per stage)."""
    headers = {"X-Dev-User": str(uuid.uuid4()), "X-Dev-Org": str(uuid.uuid4()), "X-Dev-Role": "owner"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        project = http.post("/api/projects", json={"name": "Northwind Workday"}).json()["id"]
        q = {"project_id": project}
        docs = []
        for name in ("SOW-2026-014 Northwind Workday.pdf", "Test strategy.txt"):
            up = http.post("/api/ingest-sync", params=q, files={"file": (name, (CORPUS / name).read_bytes())})
            assert up.status_code == 200, up.text
            docs.append(up.json()["document"])
        links = []
        for n in range(count):
            stage = http.post("/api/stages", params=q, json={
                "title": f"Design {n + 1}", "summary": "Core HR, Compensation and Payroll design, "
                "including the 11 hospital org structure.", "planned_start": "2026-02-09",
                "planned_end": "2026-03-20"}).json()
            assert http.put(f"/api/stages/{stage['id']}/documents", params=q,
                            json={"artifact_ids": [d["id"] for d in docs]}).status_code == 200
            asked = http.post(f"/api/stages/{stage['id']}/signoff-requests", params=q,
                              json={"email_to": "dana@northwind.example", "name": "Dana Sponsor",
                                    "message": "Please review the design pack."})
            assert asked.status_code == 201, asked.text
            links.append(asked.json()["token_link"])
    return links, {"docs": docs}


def _watch(page: Any) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("requestfailed", lambda r: problems.append(f"failed {r.url}"))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    return problems


def _check(page: Any, name: str, problems: list[str]) -> None:
    worst = page.evaluate(CONTRAST_JS, "body *")
    assert worst["ratio"] >= 4.5, (name, worst)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, (name, overflow)
    assert problems == [], (name, problems)


def test_signer_page_on_a_phone_and_a_desktop(browser: Any, server: Server) -> None:
    links, made = _links(server, 2)
    for (label, viewport), link in zip(VIEWPORTS.items(), links, strict=True):
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        problems = _watch(page)
        page.goto(link)
        page.wait_for_load_state("networkidle")
        assert page.locator("h1").inner_text().startswith("Design")
        for doc in made["docs"]:
            assert page.get_by_role("heading", name=doc["name"]).is_visible()
            assert page.get_by_text(doc["sha256"]).is_visible()
            assert page.get_by_role("link", name=f"Download {doc['name']}").is_visible()
        images = page.locator(".previews img")
        assert images.count() == 2
        for i in range(images.count()):
            images.nth(i).scroll_into_view_if_needed()
            assert images.nth(i).evaluate("img => img.complete && img.naturalWidth > 300")
        assert page.get_by_text("Test strategy").first.is_visible()
        _check(page, f"signer-{label}", problems)
        shot(page, f"signer-page-{label}")

        page.get_by_label("Approve").check()
        page.get_by_label("Your name").fill("Dana Sponsor")
        page.get_by_role("button", name="Record my decision").click()
        page.wait_for_load_state("networkidle")
        assert page.locator("h1").inner_text() == "Thank you"
        _check(page, f"signer-{label}-done", problems)
        shot(page, f"signer-page-{label}-done")
        context.close()


def _code_links(server: Server, count: int) -> list[str]:
    """A project that requires signer codes, with `count` open links (one per stage)."""
    headers = {"X-Dev-User": str(uuid.uuid4()), "X-Dev-Org": str(uuid.uuid4()), "X-Dev-Role": "owner"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        q = {"project_id": http.post("/api/projects", json={"name": "Northwind Workday"}).json()["id"]}
        assert http.put("/api/signoff-settings", params=q, json={"require_code": True}).status_code == 200
        links = []
        for n in range(count):
            stage = http.post("/api/stages", params=q, json={"title": f"Build {n + 1}",
                                                             "summary": "Payroll build."}).json()
            asked = http.post(f"/api/stages/{stage['id']}/signoff-requests", params=q,
                              json={"email_to": f"dana{n}@northwind.example", "name": "Dana Sponsor"})
            assert asked.status_code == 201, asked.text
            links.append(asked.json()["token_link"])
    return links


def _mailed_code(server: Server, to: str) -> str:
    for path in sorted((server.data_dir / "outbox").glob("*.eml")):
        msg = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        if str(msg["To"]) == to and str(msg["Subject"]).startswith("Your code"):
            body = msg.get_body(("plain",))
            assert isinstance(body, EmailMessage)
            found = re.search(r"^\s+(\d{6})$", str(body.get_content()), re.MULTILINE)
            assert found
            return found.group(1)
    raise AssertionError(f"no code mailed to {to}")


def test_signer_page_code_step_on_a_phone_and_a_desktop(browser: Any, server: Server) -> None:
    links = _code_links(server, 2)
    for n, ((label, viewport), link) in enumerate(zip(VIEWPORTS.items(), links, strict=True)):
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        problems = _watch(page)
        page.goto(link)
        assert page.get_by_role("heading", name="Confirm it is you").is_visible()
        _check(page, f"code-{label}", problems)
        page.get_by_role("button", name="Send me a code").click()
        page.wait_for_load_state("networkidle")
        assert page.get_by_role("status").inner_text().startswith("We sent a 6-digit code to d")
        code_field = page.get_by_label("6-digit code from the email")
        assert code_field.is_visible()
        _check(page, f"code-{label}-sent", problems)
        shot(page, f"signer-code-{label}-sent")

        code = _mailed_code(server, f"dana{n}@northwind.example")
        page.get_by_label("Approve").check()
        page.get_by_label("Your name").fill("Dana Sponsor")
        code_field.fill("000000" if code != "000000" else "111111")
        page.get_by_role("button", name="Record my decision").click()
        page.wait_for_load_state("networkidle")
        alert = page.get_by_role("alert")
        assert alert.is_visible()
        assert alert.inner_text() == "This code is not right: 4 tries left."
        problems.clear()  # the refusal is answered 422 on purpose
        _check(page, f"code-{label}-wrong", problems)
        shot(page, f"signer-code-{label}-wrong")

        page.get_by_label("Approve").check()
        page.get_by_label("Your name").fill("Dana Sponsor")
        page.get_by_label("6-digit code from the email").fill(code)
        page.get_by_role("button", name="Record my decision").click()
        page.wait_for_load_state("networkidle")
        assert page.locator("h1").inner_text() == "Thank you"
        _check(page, f"code-{label}-done", problems)
        context.close()
