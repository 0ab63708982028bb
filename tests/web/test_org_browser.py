"""Org settings from the browser: display name and logo, as the org's owner, on a desktop and a phone."""

from __future__ import annotations

import io
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.web.conftest import shot, start_server
from tests.web.test_shell_browser import dev_sign_in
from tests.web.ui import Watch, assert_readable_alert, page_facts

pytestmark = pytest.mark.slow


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (120, 40), (20, 60, 160)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize(("width", "height"), [(1440, 900), (390, 844)])
def test_org_owner_sets_name_and_logo(browser: Any, tmp_path: Path, width: int, height: int) -> None:
    server = start_server(tmp_path)
    context = browser.new_context(viewport={"width": width, "height": height})
    try:
        page = context.new_page()
        watch = Watch(allowed={415})
        watch.attach(page)
        dev_sign_in(page, server.url, uuid.uuid4(), uuid.uuid4())
        page.get_by_label("Name").fill("Northwind rollout")
        page.get_by_role("button", name="Create").click()
        page.wait_for_url(re.compile(r"/p/[0-9a-f-]{36}/dashboard$"))
        page.goto(page.url.replace("/dashboard", "/settings"))
        section = page.locator("#org-settings")
        section.wait_for(state="visible")

        page.get_by_label("Display name").fill("Acme Consulting")
        # A saved form reloads the page 400 ms after its toast, so what was saved is checked after the reload
        # (the toast kinds' contrast is checked where they stay); a refusal's alert stays and is checked here.
        with page.expect_navigation():
            page.get_by_role("button", name="Save display name").click()
        assert page.get_by_label("Display name").input_value() == "Acme Consulting"
        page.get_by_label("Who may create projects").select_option("members")
        with page.expect_navigation():
            page.get_by_role("button", name="Save rule").click()
        assert page.get_by_label("Who may create projects").input_value() == "members"

        page.get_by_label("Logo image").set_input_files(
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an image"})
        page.get_by_role("button", name="Upload logo").click()
        assert_readable_alert(page, ".toast.alert-error", "The logo must be a PNG, JPEG, GIF or WebP image.")

        page.get_by_label("Logo image").set_input_files(
            {"name": "logo.png", "mimeType": "image/png", "buffer": _png()})
        with page.expect_navigation():
            page.get_by_role("button", name="Upload logo").click()
        logo = page.get_by_role("img", name="Logo of Acme Consulting")
        logo.wait_for(state="visible", timeout=10_000)
        assert page.get_by_role("button", name="Remove logo").is_visible()

        facts = page_facts(page)
        assert facts["scroll"] <= facts["inner"], facts
        shot(page, f"org-settings-{width}")
        errors, failed = watch.take()
        errors = [e for e in errors if "status of 415" not in e]  # the refused file, shown as an alert above
        assert errors == [], (errors, failed)
        assert failed == [], (errors, failed)
    finally:
        context.close()
        server.stop()
