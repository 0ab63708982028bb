"""The shell in Chromium: dev sign-in, create a project, dashboard, and the database banner."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import Postgres, shot, start_server

pytestmark = pytest.mark.slow


def dev_sign_in(page: Any, url: str, user: uuid.UUID, org: uuid.UUID) -> None:
    page.goto(f"{url}/login")
    page.get_by_label("User id").fill(str(user))
    page.get_by_label("Org id (optional)").fill(str(org))
    page.get_by_role("button", name="Sign in (dev)").click()
    page.wait_for_url(f"{url}/")


def test_sign_in_create_project_and_open_its_dashboard(context: Any, tmp_path: Path) -> None:
    server = start_server(tmp_path)
    try:
        page = context.new_page()
        dev_sign_in(page, server.url, uuid.uuid4(), uuid.uuid4())
        shot(page, "projects")
        page.get_by_label("Name").fill("Northwind Workday rollout")
        page.get_by_role("button", name="Create").click()
        page.wait_for_url(re.compile(r"/p/[0-9a-f-]{36}/dashboard$"))
        assert page.locator("h1").inner_text() == "Northwind Workday rollout"
        assert page.locator("#db-banner").is_hidden()
        shot(page, "dashboard")
        page.get_by_role("link", name="Settings").click()
        page.locator("#invite-email").fill("client.pm@example.com")
        page.get_by_role("button", name="Invite").click()
        page.wait_for_selector("text=client.pm@example.com")
        shot(page, "settings")
        page.get_by_role("link", name="Admin").click()
        assert page.locator("#audit-table").get_by_text("member.invited").count() == 1
        shot(page, "admin")
    finally:
        server.stop()


def test_stopping_the_database_shows_the_orange_banner(context: Any, tmp_path: Path, own_postgres: Postgres) -> None:
    server = start_server(tmp_path, KAP_DATABASE_URL=own_postgres.url, KAP_AUTO_MIGRATE="1")
    try:
        page = context.new_page()
        dev_sign_in(page, server.url, uuid.uuid4(), uuid.uuid4())
        page.get_by_label("Name").fill("Banner check")
        page.get_by_role("button", name="Create").click()
        page.wait_for_url(re.compile(r"/p/[0-9a-f-]{36}/dashboard$"))
        dashboard = page.url
        assert page.locator("#db-banner").is_hidden()
        own_postgres.stop()
        page.reload()
        page.locator("#db-banner").wait_for(state="visible")
        shot(page, "database-down")
        own_postgres.start()
        page.locator("#db-banner").wait_for(state="hidden", timeout=30_000)
        page.goto(dashboard)
        assert page.locator("h1").inner_text() == "Banner check"
    finally:
        server.stop()
