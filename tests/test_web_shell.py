"""The web shell served by the same app: sign-in, project picker, dashboard, settings, admin, banner."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

from kap.app import create_app
from kap.core.runtime import Runtime
from kap.core.settings import load_settings
from tests.conftest import World


def signed_in(app: Any, user: uuid.UUID) -> TestClient:
    browser = TestClient(app, raise_server_exceptions=False)
    response = browser.post("/login/dev", data={"user_id": str(user)}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return browser


def test_pages_need_a_signed_in_user(client: TestClient) -> None:
    path = f"/p/{uuid.uuid4()}/dashboard"
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next={path}"
    assert "Sign in to Kap" in client.get("/login").text


def test_dev_sign_in_is_refused_without_dev_auth(make_client: Any) -> None:
    browser = make_client(dev_auth=False)
    response = browser.post("/login/dev", data={"user_id": str(uuid.uuid4())}, follow_redirects=False)
    assert response.headers["location"] == "/login"
    assert "Dev sign-in" not in browser.get("/login").text


def test_project_picker_dashboard_settings_and_admin(app: Any, world: World) -> None:
    with signed_in(app, world.users["owner"]) as browser:
        home = browser.get("/")
        a = f"/p/{world.project_a}"
        assert home.status_code == 200
        assert f"{a}/dashboard" in home.text
        assert str(world.project_c) not in home.text
        dash = browser.get(f"{a}/dashboard")
        assert dash.status_code == 200
        assert "A</h1>" in dash.text
        assert f'href="{a}/settings"' in dash.text
        assert f'href="{a}/admin"' in dash.text
        settings = browser.get(f"{a}/settings")
        assert settings.status_code == 200
        assert "Invite by email" in settings.text
        admin = browser.get(f"{a}/admin", params={"action": "project"})
        assert admin.status_code == 200
        assert "Export CSV" in admin.text
        assert "content-security-policy" in admin.headers


def test_member_is_not_offered_what_they_cannot_do(app: Any, world: World) -> None:
    with signed_in(app, world.users["member"]) as browser:
        a = f"/p/{world.project_a}"
        dash = browser.get(f"{a}/dashboard")
        assert f'href="{a}/admin"' not in dash.text
        assert "Invite by email" not in browser.get(f"{a}/settings").text
        refused = browser.get(f"{a}/admin")
        assert refused.status_code == 403
        assert "Reading the audit log needs a project admin or higher. You are a member here." in refused.text
        assert "audit.read" not in refused.text


def test_old_links_redirect_into_the_project(app: Any, world: World) -> None:
    with signed_in(app, world.users["owner"]) as browser:
        opened = browser.get(f"/projects/{world.project_a}/open", follow_redirects=False)
        assert opened.headers["location"] == f"/p/{world.project_a}/dashboard"
        assert browser.get(f"/projects/{world.project_a}", follow_redirects=False).headers["location"] \
            == f"/p/{world.project_a}/dashboard"
        assert browser.get("/documents", follow_redirects=False).headers["location"] == "/"
        browser.get(f"/p/{world.project_a}/dashboard")
        old = browser.get("/documents", params={"name": "plan"}, follow_redirects=False)
        assert old.headers["location"] == f"/p/{world.project_a}/documents?name=plan"


def test_a_foreign_project_is_a_not_found_page(app: Any, world: World) -> None:
    with signed_in(app, world.users["outsider"]) as browser:
        response = browser.get(f"/p/{world.project_a}/dashboard")
        assert response.status_code == 404
        assert "Project not found" in response.text
        assert browser.get("/p/not-a-uuid/dashboard").status_code == 404


def test_fragment_requests_get_only_the_content(app: Any, world: World) -> None:
    with signed_in(app, world.users["owner"]) as browser:
        fragment = browser.get(f"/p/{world.project_a}/dashboard", headers={"HX-Request": "true"})
        assert "<html" not in fragment.text
        assert "<h1>" in fragment.text


def test_database_down_page_shows_the_banner(base_settings: dict[str, Any], world: World) -> None:
    rt = Runtime.build(load_settings(**{**base_settings, "kap_database_url": "postgresql://kap@127.0.0.1:1/kap"}))
    with TestClient(create_app(runtime=rt), raise_server_exceptions=False) as browser:
        response = browser.get(f"/p/{world.project_a}/dashboard")
        assert response.status_code == 503
        assert 'id="db-banner"' in response.text
        assert 'id="db-banner" class="banner" role="alert" hidden' \
            not in response.text
    rt.close()


def test_static_assets_are_served(client: TestClient) -> None:
    assert client.get("/static/kap.js").status_code == 200
    assert client.get("/static/kap.css").headers["content-type"].startswith("text/css")
