"""The review queue, the RAID log and an item page in Chromium, as a lead sees them."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.raid.conftest import CORPUS
from tests.web.conftest import shot, start_server
from tests.web.test_shell_browser import dev_sign_in

pytestmark = pytest.mark.slow
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# The lowest text/background contrast among visible text elements, with the element that has it.
CONTRAST_JS = """(selector) => {
  const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => { const c = [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92
      : Math.pow((v + 0.055) / 1.055, 2.4); }); return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]; };
  const background = el => { for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3); } return [255, 255, 255]; };
  let worst = { ratio: 99, text: "" };
  for (const el of document.querySelectorAll(selector)) {
    const style = getComputedStyle(el);
    if (!el.offsetParent || style.visibility === "hidden") continue;
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    const a = lum(rgb(style.color)), b = lum(background(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < worst.ratio) worst = { ratio, text: el.tagName + " " + el.textContent.trim().slice(0, 60) };
  }
  return worst;
}"""


def _check_readable(page: Any, name: str) -> None:
    worst = page.evaluate(CONTRAST_JS, "main *")
    assert worst["ratio"] >= 4.5, (name, worst)
    assert not UUID.search(page.locator("main").inner_text()), name


def _watch(page: Any) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    page.on("response", lambda r: problems.append(f"{r.status}: {r.url}") if r.status >= 400 else None)
    return problems


def _upload(server_url: str, user: uuid.UUID, project: str, name: str) -> None:
    with httpx.Client(base_url=server_url, timeout=60) as http:
        response = http.post("/api/ingest-sync", params={"project_id": project},
                             headers={"X-Dev-User": str(user), "X-Dev-Role": "owner"},
                             files={"file": (name, (CORPUS / name).read_bytes(), "application/octet-stream")})
        assert response.status_code == 200, response.text


def _wait_for_suggestions(server_url: str, user: uuid.UUID, project: str, count: int) -> None:
    """The extraction job runs on the server's queue after each upload; wait until it has."""
    with httpx.Client(base_url=server_url, timeout=10) as http:
        for _ in range(300):
            found = http.get("/api/raid", params={"project_id": project},
                             headers={"X-Dev-User": str(user), "X-Dev-Role": "owner"}).json()["items"]
            if len(found) >= count:
                return
            time.sleep(0.2)
    raise AssertionError(f"{len(found)} suggestions, {count} expected")


def test_a_lead_reviews_suggestions_and_works_the_log(context: Any, tmp_path: Path) -> None:
    server = start_server(tmp_path)
    try:
        page = context.new_page()
        user = uuid.uuid4()
        dev_sign_in(page, server.url, user, uuid.uuid4())
        page.get_by_label("Name").fill("Northwind Workday rollout")
        page.get_by_role("button", name="Create").click()
        page.wait_for_url(re.compile(r"/p/[0-9a-f-]{36}/dashboard$"))
        project = page.url.split("/p/")[1].split("/")[0]
        problems = _watch(page)
        for name in ("Kickoff minutes 2026-01-13.docx", "RAID log.xlsx"):
            _upload(server.url, user, project, name)
        _wait_for_suggestions(server.url, user, project, 12)

        page.get_by_role("link", name="RAID log").click()
        review = page.get_by_test_id("review-link")
        expect(review).to_have_text("12 found in documents, waiting for review")
        review.click()
        cards = page.locator("section.suggestion")
        expect(cards).to_have_count(12)
        a07 = cards.filter(has_text="A-07")
        expect(a07.locator("blockquote")).to_have_text(re.compile(r"^Action A-07: Hannah Brooks to deliver"))
        expect(a07.get_by_label("Owner")).to_have_value("Hannah Brooks")
        expect(a07.get_by_label("Due")).to_have_value("2026-01-23")
        _check_readable(page, "review")
        shot(page, "raid-review")

        a08 = cards.filter(has_text="A-08")
        a08.get_by_label("Due").fill("2026-01-30")
        a08.get_by_role("button", name="Accept").click()
        expect(page.locator(".toast", has_text="Accepted into the RAID log").first).to_be_visible()
        expect(cards).to_have_count(11)
        a07.get_by_role("button", name="Accept").click()
        expect(cards).to_have_count(10)
        cards.filter(has_text="D-01").get_by_role("button", name="Dismiss").click()
        expect(cards).to_have_count(9)
        r07 = cards.filter(has_text="R-07")
        r07.get_by_label("Severity").select_option("high")
        r07.get_by_role("button", name="Accept").click()
        expect(cards).to_have_count(8)

        page.goto(f"{server.url}/p/{project}/raid")
        rows = page.locator("table.raid-log tbody tr")
        expect(rows).to_have_count(3)
        overdue = page.locator("tr.overdue")
        expect(overdue).to_have_count(2)  # both due in January 2026
        expect(overdue.first.locator(".overdue-badge")).to_have_text("Overdue")
        expect(page.locator("tr", has_text="R-07").get_by_label("Severity")).to_have_value("high")
        _check_readable(page, "log")
        shot(page, "raid-log")

        page.goto(f"{server.url}/p/{project}/dashboard")
        panel = page.locator("#panel-raid")
        expect(panel).to_contain_text("Overdue: A-07 Deliver the integration inventory")
        expect(panel).to_contain_text("High risk: R-07")
        expect(panel.get_by_test_id("raid-chip")).to_have_text("2 overdue · 1 high risk")
        shot(page, "raid-dashboard-panel")

        page.goto(f"{server.url}/p/{project}/raid?sort=due")
        a07_row = page.locator("tr", has_text="A-07")
        a07_row.get_by_label("Status").select_option("done")
        expect(page.locator(".toast", has_text="Saved").first).to_be_visible()
        page.reload()
        expect(page.locator("tr.overdue")).to_have_count(1)
        page.locator("tr", has_text="A-07").get_by_role("link", name="A-07").click()
        page.wait_for_url(re.compile(r"/raid/items/[0-9a-f-]{36}$"))
        expect(page.get_by_test_id("source-quote")).to_contain_text("by January 23, 2026")
        expect(page.get_by_role("link", name="Kickoff minutes 2026-01-13.docx")).to_be_visible()
        page.get_by_label("Add a comment").fill("Inventory received on January 22.")
        page.get_by_role("button", name="Comment").click()
        expect(page.locator(".comment", has_text="Inventory received on January 22.")).to_be_visible(timeout=10_000)
        expect(page.locator("main")).to_contain_text("status: open → done")
        _check_readable(page, "item")
        shot(page, "raid-item")

        page.set_viewport_size({"width": 390, "height": 844})
        for path in ("raid", "raid/review", "dashboard"):
            page.goto(f"{server.url}/p/{project}/{path}")
            shot(page, f"phone-{path.replace('/', '-')}")
            assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1, path
        assert problems == []
    finally:
        server.stop()
