"""Every page as each role on a desktop and a phone, every error path a person can reach, and deep links.

Chromium measures what a person gets: no sideways scrolling, no console errors or failed requests,
no id where a name belongs, alerts on screen with text/background contrast of at least 4.5:1.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from playwright.sync_api import expect

from tests.conftest import FIXTURES, PG_ADMIN_URL, TEST_DB
from tests.web.conftest import Server, shot, start_server
from tests.web.ui import UUID_RE, Seeded, Watch, assert_readable_alert, contrast, page_facts, seed

pytestmark = pytest.mark.slow
VIEWPORTS = {"desktop": {"width": 1440, "height": 900}, "phone": {"width": 390, "height": 844}}
ROLES = ("owner", "admin", "pm", "lead", "member")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """One `kap serve` (SQLite, or PostgreSQL with KAP_TEST_DB=postgresql) seeded through the API."""
    folder = tmp_path_factory.mktemp("ui")
    name = f"kap_ui_{uuid.uuid4().hex[:12]}"
    env: dict[str, str] = {}
    if TEST_DB == "postgresql":
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        env = {"KAP_DATABASE_URL": f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}", "KAP_AUTO_MIGRATE": "1"}
    server: Server = start_server(folder, **env)
    try:
        yield seed(server.url, FIXTURES)
    finally:
        server.stop()
        if TEST_DB == "postgresql":
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sign_in(context: Any, world: Seeded, who: str) -> Any:
    """A page of a browser context signed in as `who` through the dev sign-in form."""
    page = context.new_page()
    page.goto(f"{world.url}/login")
    page.get_by_label("User id").fill(str(world.users[who]))
    page.get_by_label("Org id (optional)").fill(str(world.org))
    page.get_by_role("button", name="Sign in (dev)").click()
    page.wait_for_url(f"{world.url}/")
    return page


def _pages_of(page: Any, world: Seeded) -> list[str]:
    page.goto(f"{world.url}/p/{world.project}/dashboard")
    hrefs = page.eval_on_selector_all("#main-nav a", "els => els.map(a => a.getAttribute('href'))")
    doc = world.documents["SOW-2026-014 Northwind Workday.pdf"]
    return ["/", *[h for h in hrefs if h.startswith("/p/")], f"/p/{world.project}/documents/{doc}"]


@pytest.mark.parametrize("who", ROLES)
def test_every_page_as_each_role_on_desktop_and_phone(browser: Any, world: Seeded, who: str) -> None:
    problems: list[str] = []
    for size, viewport in VIEWPORTS.items():
        context = browser.new_context(viewport=viewport)
        try:
            page = sign_in(context, world, who)
            watch = Watch()
            watch.attach(page)
            for path in _pages_of(page, world):
                watch.take()
                page.goto(f"{world.url}{path}")
                page.wait_for_load_state("networkidle")
                facts = page_facts(page)
                name = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "x", path).strip("/").replace("/", "-") or "home"
                shot(page, f"sweep-{who}-{size}-{name}")
                errors, failed = watch.take()
                if facts["scroll"] > facts["inner"]:
                    problems.append(f"{size} {path}: page is {facts['scroll']}px wide in {facts['inner']}px")
                if errors or failed:
                    problems.append(f"{size} {path}: console {errors} requests {failed}")
                if UUID_RE.search(facts["text"]):
                    problems.append(f"{size} {path}: an id is shown: {UUID_RE.findall(facts['text'])[:3]}")
            if size == "phone":
                page.goto(f"{world.url}/p/{world.project}/dashboard")
                nav = page.locator("#main-nav")
                assert nav.is_hidden(), "the menu should be collapsed on a phone"
                page.get_by_role("button", name="Menu").click()
                expect(nav).to_be_visible()
                assert (page.locator("header.top").bounding_box() or {}).get("height", 0) > 100
                shot(page, f"sweep-{who}-phone-menu-open")
        finally:
            context.close()
    assert not problems, "\n".join(problems)


def _documents(page: Any, world: Seeded) -> None:
    page.goto(f"{world.url}/p/{world.project}/documents")


def _upload(page: Any, name: str, body: bytes, mime: str = "application/octet-stream") -> None:
    page.get_by_label(re.compile("^Files")).set_input_files(files=[{"name": name, "mimeType": mime, "buffer": body}])
    page.get_by_role("button", name="Upload").click()


@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_every_error_a_person_can_reach_is_readable(browser: Any, world: Seeded, size: str) -> None:
    context = browser.new_context(viewport=VIEWPORTS[size])
    try:
        page = sign_in(context, world, "owner")
        page.on("dialog", lambda d: d.accept())
        _documents(page, world)
        _upload(page, "empty.txt", b"", "text/plain")
        assert_readable_alert(page, ".toast.alert-error", "The file is empty. Pick a file that has content")
        _upload(page, "tool.exe", b"MZ\x90\x00\x03\x00\x00\x00" + bytes(range(256)) * 4)
        assert_readable_alert(page, ".toast.alert-error", "Files of type .exe are not supported. Kap takes PDF")
        refused = page.locator("#uploads li.refused", has_text="tool.exe")
        expect(refused.locator(".status-failed")).to_have_text("Refused")
        expect(refused.locator("progress")).to_have_count(0)
        assert contrast(refused.locator(".status-failed")) >= 4.5
        strategy = (FIXTURES / "northwind" / "Test strategy.txt").read_bytes()
        _upload(page, "Test strategy copy.txt", strategy, "text/plain")
        dup = assert_readable_alert(page, ".toast.alert-error",
                                    "This file is already in the project as 'Test strategy.txt'.")
        expect(dup.get_by_role("link", name="Open the document")).to_be_visible()
        shot(page, f"errors-{size}-uploads")

        page.goto(f"{world.url}/p/{world.project}/settings")
        tz = page.get_by_label("Time zone")
        tz.fill("Berlin")
        page.get_by_role("button", name="Save schedule").click()
        assert_readable_alert(page, ".toast.alert-error", "Time zone: Must be an IANA time zone such as Europe/Berlin.")
        shot(page, f"errors-{size}-timezone")
        page.locator(f"#member-{world.users['owner']}").get_by_role("button", name="Remove").click()
        assert_readable_alert(page, ".toast.alert-error", "You are the last owner, so you cannot leave")
        shot(page, f"errors-{size}-last-owner")

        for cookie in context.cookies():
            if cookie["name"] == "kap_session":
                context.clear_cookies(name="kap_session")
        page.get_by_role("button", name="Save schedule").click()
        expired = assert_readable_alert(page, ".toast.alert-error",
                                        "Your session has expired. Sign in again to continue.")
        expect(expired.get_by_role("link", name="Sign in again")).to_have_attribute(
            "href", re.compile(r"^/login\?next=%2Fp%2F"))
        shot(page, f"errors-{size}-expired")
    finally:
        context.close()

    context = browser.new_context(viewport=VIEWPORTS[size])
    try:
        pm = sign_in(context, world, "pm")
        pm.goto(f"{world.url}/p/{world.project}/stages")
        pm.locator("section.stage summary", has_text="Edit plan").first.click()
        with httpx.Client(base_url=world.url) as c:  # the owner lowers the pm's role meanwhile
            lowered = c.patch(f"/api/projects/{world.project}/members/{world.users['pm']}",
                              json={"role": "member"}, headers=world.headers())
            assert lowered.status_code == 200, lowered.text
        try:
            pm.locator("section.stage").first.get_by_role("button", name="Save stage").click()
            assert_readable_alert(pm, ".toast.alert-error",
                                  "Changing the stage plan needs a project manager or higher. You are a member here.")
            shot(pm, f"errors-{size}-role-too-low")
            pm.goto(f"{world.url}/p/{world.project}/admin")
            assert_readable_alert(pm, ".alert-error", "Reading the audit log needs a project admin or higher.")
            expect(pm.locator("h1")).to_have_text("You cannot open this page")
            shot(pm, f"errors-{size}-forbidden-page")
        finally:
            with httpx.Client(base_url=world.url) as c:
                c.patch(f"/api/projects/{world.project}/members/{world.users['pm']}", json={"role": "pm"},
                        headers=world.headers())
    finally:
        context.close()

    context = browser.new_context(viewport=VIEWPORTS[size])
    try:
        outsider = sign_in(context, world, "outsider")
        outsider.goto(f"{world.url}/p/{world.project}/documents")
        assert_readable_alert(outsider, ".alert-error", "This project does not exist, or you are not a member of it.")
        shot(outsider, f"errors-{size}-unreachable-project")
    finally:
        context.close()


def test_deep_links_open_their_project_whatever_was_visited_last(browser: Any, world: Seeded) -> None:
    context = browser.new_context(viewport=VIEWPORTS["desktop"])
    try:
        page = sign_in(context, world, "owner")
        sow = world.documents["SOW-2026-014 Northwind Workday.pdf"]
        page.goto(f"{world.url}/p/{world.other_project}/documents")
        expect(page.locator("#doc-list")).to_contain_text("Contoso test plan.txt")
        page.goto(f"{world.url}/p/{world.project}/documents/{sow}#page=1")
        expect(page.locator("h1")).to_have_text("SOW-2026-014 Northwind Workday.pdf")
        expect(page.locator("#page-1")).to_be_focused()
        with httpx.Client(base_url=world.url, timeout=60) as c:
            q = {"project_id": str(world.project)}
            answer = c.post("/api/ask", params=q, headers=world.headers(),
                            json={"question": "When is the go-live?"}).json()
            digest = c.get("/api/digest/preview", params=q, headers=world.headers()).json()
        citation = answer["citations"][0]["link"]
        page.goto(f"{world.url}/p/{world.other_project}/dashboard")
        page.goto(f"{world.url}{citation}")
        expect(page.locator("h1")).to_have_text(answer["citations"][0]["name"])
        if "#page=" in citation:
            expect(page.locator(f"#page-{citation.rsplit('=', 1)[1]}")).to_have_class(re.compile("highlight"))
        shot(page, "deep-link-citation")
        links = [i["url"] for s in digest["sections"] for i in s["items"] if i.get("url")]
        assert links, links
        assert all(f"/p/{world.project}/" in u for u in links), links
        page.goto(f"{world.url}/p/{world.other_project}/dashboard")
        page.goto(links[0])
        assert f"/p/{world.project}/" in page.url
        expect(page.locator("h1")).not_to_have_text("Project not found")
        page.goto(f"{world.url}/p/{world.other_project}/dashboard")
        page.goto(f"{world.url}/projects/{world.project}")
        expect(page.locator("h1")).to_have_text("Northwind Workday rollout")
        page.goto(f"{world.url}/documents/{sow}")
        expect(page.locator("h1")).to_have_text("SOW-2026-014 Northwind Workday.pdf")
    finally:
        context.close()


def test_alert_kinds_all_contrast_enough(browser: Any, world: Seeded) -> None:
    context = browser.new_context(viewport=VIEWPORTS["desktop"])
    try:
        page = sign_in(context, world, "owner")
        page.goto(f"{world.url}/p/{world.project}/dashboard")
        for kind in ("info", "ok", "warn", "error"):
            page.evaluate("([k]) => window.kap.toast(`A ${k} message with a link`, k, { href: '/', text: 'Open' })",
                          [kind])
            assert_readable_alert(page, f".toast.alert-{kind}", f"A {kind} message")
        shot(page, "alert-kinds")
    finally:
        context.close()




def test_internal_decision_and_restore_over_the_same_project(browser: Any, world: Seeded) -> None:
    context = browser.new_context(viewport=VIEWPORTS["phone"])
    try:
        page = sign_in(context, world, "owner")
        page.on("dialog", lambda d: d.accept())
        page.goto(f"{world.url}/p/{world.project}/stages")
        stage = page.locator("section.stage").nth(1)
        stage.locator("summary", has_text="Record a decision").click()
        stage.get_by_label("Reject", exact=True).check()
        stage.get_by_role("button", name="Record the decision").click()
        assert_readable_alert(page, ".toast.alert-error", "A note is required to reject.")
        stage.get_by_label("Approve", exact=True).check()
        stage.get_by_label("Signed by").fill("Dana Whitfield")
        with page.expect_navigation():
            stage.get_by_role("button", name="Record the decision").click()
        expect(page.locator("section.stage").nth(1).locator(".status").first).to_have_text("Signed off")
        shot(page, "stages-internal-decision")

        page.goto(f"{world.url}/p/{world.project}/backups")
        with page.expect_navigation(timeout=60_000):
            page.get_by_role("button", name="Back up now").click()
        page.get_by_label(re.compile("^Over this project")).check()
        page.get_by_label(re.compile("^Type the project name")).fill("Northwind Workday rollout")
        with page.expect_navigation(timeout=60_000):  # the page reloads to show the restored project
            page.get_by_role("button", name="Restore", exact=True).click()
            assert_readable_alert(page, ".toast.alert-ok", "Restored over this project")
            shot(page, "backups-restore-over")
        page.goto(f"{world.url}/p/{world.project}/documents")
        expect(page.locator("#doc-list")).to_contain_text("SOW-2026-014 Northwind Workday.pdf")
    finally:
        context.close()
