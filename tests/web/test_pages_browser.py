"""Every capability from the browser: upload the northwind corpus, Ask Kap, the OCR lane, sign-off, backups."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from playwright.sync_api import expect

from tests.conftest import FIXTURES, PG_ADMIN_URL, TEST_DB
from tests.web.conftest import Server, shot, start_server
from tests.web.test_shell_browser import dev_sign_in
from tests.web.ui import contrast, cut_off

pytestmark = pytest.mark.slow

CORPUS = sorted((FIXTURES / "northwind").iterdir())
DONE = ("ready", "needs_ocr", "failed")


@pytest.fixture
def server(tmp_path: Path) -> Any:
    """A real `kap serve`, on SQLite or on a fresh PostgreSQL database (KAP_TEST_DB)."""
    if TEST_DB != "postgresql":
        running = start_server(tmp_path)
        yield running
        running.stop()
        return
    name = f"kap_web_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    running = start_server(tmp_path, KAP_DATABASE_URL=f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}",
                           KAP_AUTO_MIGRATE="1")
    try:
        yield running
    finally:
        running.stop()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _new_project(page: Any, server: Server, name: str) -> None:
    dev_sign_in(page, server.url, uuid.uuid4(), uuid.uuid4())
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Create").click()
    page.wait_for_url(re.compile(r"/p/[0-9a-f-]{36}/dashboard$"))


def _upload_corpus(page: Any) -> None:
    page.get_by_role("link", name="Documents", exact=True).click()
    # Toasts come and go (six seconds, five at a time): record every one shown, then check.
    page.evaluate("""() => { window.shownToasts = [];
        new MutationObserver(changes => changes.forEach(c => c.addedNodes.forEach(n => {
            if (n.classList && n.classList.contains('toast'))
                window.shownToasts.push(n.className + ' ' + n.textContent);
        }))).observe(document.getElementById('toasts'), { childList: true }); }""")
    page.get_by_label("Files").set_input_files([str(p) for p in CORPUS])
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#uploads progress")).to_have_count(len(CORPUS))
    for wanted in ("ok", "is ready"), ("", "landed in the Needs OCR lane"):
        page.wait_for_function(
            "([kind, text]) => window.shownToasts.some(t => t.includes(kind) && t.includes(text))",
            arg=list(wanted), timeout=120_000)
    rows = page.locator("#doc-list tbody tr[data-status]")
    page.wait_for_function(
        """([count, done]) => { const rows = [...document.querySelectorAll('#doc-list tbody tr[data-status]')];
                               return rows.length >= count && rows.every(r => done.includes(r.dataset.status)); }""",
        arg=[len(CORPUS), list(DONE)], timeout=120_000)
    assert rows.count() >= len(CORPUS)
    assert page.locator('#doc-list tr[data-status="failed"]').count() == 0
    shot(page, "documents")


def _ask_and_follow_a_citation(page: Any) -> None:
    question = json.loads((FIXTURES / "northwind-questions.json").read_text())[0]
    page.get_by_role("link", name="Ask Kap").click()
    page.get_by_label("Your question").fill(question["question"])
    page.get_by_role("button", name="Ask").click()
    expect(page.locator("#ask-answer")).to_contain_text(question["answer_contains"][0], timeout=30_000)
    shot(page, "ask")
    # Asked the way a person asks, not with the document's words ("six weeks of hypercare").
    page.get_by_label("Your question").fill("What is the hypercare period?")
    page.get_by_role("button", name="Ask").click()
    expect(page.locator("#ask-answer")).to_contain_text("six weeks", timeout=30_000)
    expect(page.locator("#ask-answer")).to_be_visible()
    shot(page, "ask-paraphrase")
    page.get_by_label("Your question").fill(question["question"])
    page.get_by_role("button", name="Ask").click()
    expect(page.locator("#ask-answer")).to_contain_text(question["answer_contains"][0], timeout=30_000)
    first = page.locator("#ask-citations a.citation-link").first
    href = first.get_attribute("href")
    match = re.match(r"^/p/[0-9a-f-]{36}/documents/[0-9a-f-]{36}(?:#page=(\d+))?$", href or "")
    assert match, href
    first.click()
    page.wait_for_url(re.compile(r"/documents/[0-9a-f-]{36}"))
    if match.group(1):
        quoted = page.locator(f"#page-{match.group(1)}")
        expect(quoted).to_have_class(re.compile("highlight"))
        expect(quoted).to_be_focused()
        # The cited page's image is drawn (it loads lazily, rendered in the sandbox), not an empty frame.
        image = quoted.locator("figure.page-image img")
        expect(image).to_be_visible()
        image.evaluate("img => img.complete && img.naturalWidth ? true : "
                       "new Promise(done => img.addEventListener('load', done, {once: true}))")
        assert image.evaluate("img => img.naturalWidth") == 1000
    shot(page, "citation-highlight")


def _resolve_the_ocr_lane(page: Any) -> None:
    page.get_by_role("link", name="Needs OCR").click()
    cards = page.locator("section[id^=lane-]")
    waiting = cards.count()
    assert waiting >= 1
    shot(page, "ocr-lane")
    first = cards.first
    text_view = first.locator("h2 a").get_attribute("href")
    first.get_by_role("button", name="Run OCR").click()
    page.locator(".toast", has_text="OCR started").wait_for()
    page.locator(".toast.alert-ok", has_text="is ready").first.wait_for(timeout=120_000)
    expect(cards).to_have_count(waiting - 1, timeout=10_000)
    if waiting > 1:
        card = cards.first
        card.locator("summary", has_text="Paste text").click()
        card.get_by_role("textbox").fill("Change request CR-004 approved and signed by Dana Whitfield.")
        with page.expect_navigation():
            card.get_by_role("button", name="Save text").click()
        expect(cards).to_have_count(waiting - 2, timeout=10_000)
    page.goto(page.url)
    assert page.get_by_text("Nothing waits for OCR.").count() == 1
    page.goto(page.url.split("/p/")[0] + text_view)
    expect(page.locator("pre.extracted").first).to_contain_text("CR-004")
    shot(page, "document-text")


def _request_and_decide_a_signoff(page: Any, browser: Any) -> None:
    page.get_by_role("link", name="Stages").click()
    with page.expect_navigation():
        page.get_by_role("button", name=re.compile("Apply the standard plan")).click()
    page.locator("section.stage").first.wait_for()
    expect(page.locator("section.stage")).to_have_count(6)
    stage = page.locator("section.stage").first
    stage.locator("summary", has_text="Edit plan").click()
    stage.get_by_label("Planned start").fill("2026-01-12")
    stage.get_by_label("Planned end").fill("2026-02-13")
    stage.get_by_label("Summary for the signer").fill("Discovery workshops held; requirements signed by HR leads.")
    with page.expect_navigation():
        stage.get_by_role("button", name="Save stage").click()
    stage = page.locator("section.stage").first
    expect(stage).to_contain_text("2026-01-12")
    stage.locator("summary", has_text="Request sign-off").click()
    stage.get_by_label("Signer's email").fill("dana.whitfield@northwind.example")
    stage.get_by_label("Signer's name").fill("Dana Whitfield")
    stage.get_by_role("button", name="Send sign-off request").click()
    link = stage.locator("a.signoff-url")
    link.wait_for()
    url = link.get_attribute("href")
    shot(page, "stages-requested")
    outside = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        signer = outside.new_page()
        signer.goto(url)
        expect(signer.locator("h1")).to_have_text("Discovery")
        shot(signer, "signoff-external")
        signer.get_by_label("Approve").check()
        signer.get_by_label("Your name").fill("Dana Whitfield")
        signer.get_by_role("button", name="Record my decision").click()
        expect(signer.locator("h1")).to_have_text("Thank you")
        shot(signer, "signoff-external-done")
    finally:
        outside.close()
    page.reload()
    stage = page.locator("section.stage").first
    expect(stage.locator(".status").first).to_have_text("Signed off")
    with page.expect_download() as download:
        stage.get_by_role("link", name="Certificate").click()
    assert download.value.suggested_filename.startswith("signoff-")
    shot(page, "stages")


def _backup_and_store_a_file(page: Any) -> str:
    page.get_by_role("link", name="Backups").click()
    with page.expect_navigation(timeout=60_000):
        page.get_by_role("button", name="Back up now").click()
    page.locator("#backup-contents").wait_for(timeout=60_000)
    row = page.locator("#backup-files tr", has_text="Test strategy.txt")
    row.get_by_role("button", name=re.compile("Store and re-ingest")).click()
    toast = page.locator(".toast.alert-ok", has_text="Restored from the backup")
    toast.wait_for(timeout=60_000)
    shot(page, "backups")
    toast.get_by_role("link", name="View in Documents").click()
    page.wait_for_url(re.compile(r"/p/[0-9a-f-]{36}/documents/[0-9a-f-]{36}$"))
    expect(page.locator("h1")).to_have_text("Test strategy.txt")
    return page.url.rsplit("/", 1)[-1]


def _settings(page: Any) -> None:
    page.get_by_role("link", name="Settings").click()
    page.get_by_label("Time zone").fill("America/New_York")
    page.get_by_label("Digest hour").fill("9")
    with page.expect_navigation():
        page.get_by_role("button", name="Save schedule").click()
    expect(page.get_by_label("Time zone")).to_have_value("America/New_York")
    page.get_by_label("Recipient address").fill("steerco@northwind.example")
    page.get_by_label("Recipient name").fill("Steering committee")
    with page.expect_navigation():
        page.get_by_role("button", name="Add recipient").click()
    page.locator("#external-recipients", has_text="steerco@northwind.example").wait_for()
    page.get_by_label("Alerts").uncheck()
    with page.expect_navigation():
        page.get_by_role("button", name="Save my subscriptions").click()
    expect(page.get_by_label("Alerts")).not_to_be_checked()
    shot(page, "settings-comms")


def test_a_consultant_works_the_whole_project_in_the_browser(browser: Any, context: Any, server: Server) -> None:
    page = context.new_page()
    _new_project(page, server, "Northwind Workday rollout")
    _upload_corpus(page)
    _ask_and_follow_a_citation(page)
    _resolve_the_ocr_lane(page)
    _request_and_decide_a_signoff(page, browser)
    artifact = _backup_and_store_a_file(page)
    _settings(page)
    page.get_by_role("link", name="Dashboard").click()
    page.wait_for_url(re.compile(r"/p/[0-9a-f-]{36}/dashboard$"))
    shot(page, "dashboard-full")
    project = page.url.split("/p/")[1].split("/")[0]
    panel = page.locator("#panel-restore-activity")
    expect(panel).to_contain_text("Test strategy.txt")
    assert panel.locator(f'a[href="/p/{project}/documents/{artifact}"]').count() == 1
    expect(page.locator("#panel-stage-progress")).to_contain_text("1 of 6 signed off")
    expect(page.locator('[data-testid="scheduler-chip"]')).to_contain_text("next window")
    expect(page.locator('[data-testid="ocr-lane-chip"]')).to_have_text("0 waiting")
    page.set_viewport_size({"width": 390, "height": 844})
    for path, name in (("/dashboard", "phone-dashboard"), ("/documents", "phone-documents")):
        page.goto(f"{server.url}/p/{project}{path}")
        shot(page, name)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1, path
    # On a phone every document's actions are whole on screen, its status label readable.
    assert cut_off(page, "#doc-list") == []
    first = page.locator("#doc-list tbody tr").first
    expect(first.get_by_role("button", name=re.compile("^Delete "))).to_be_visible()
    assert contrast(first.locator('td[data-label="Status"]')) >= 4.5
