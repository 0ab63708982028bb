"""Every project page, as anonymous, another tenant, a too-low role and the lowest allowed role.

Pages authorise like the API (`resolve_project`, then `ProjectContext.require(action)`): the table
below names each page's action, and a page route missing from it fails the first test.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from kap.core.permissions import ACTIONS, ROLE_LABELS, Action, role_below
from tests.conftest import World
from tests.test_web_shell import signed_in

PAGE_ACTIONS = {
    "/p/{project_id}/dashboard": Action.PROJECT_READ,
    "/p/{project_id}/documents": Action.DOCUMENTS_READ,
    "/p/{project_id}/documents/{artifact_id}": Action.DOCUMENTS_READ,
    "/p/{project_id}/documents/{artifact_id}/pages/{page}.png": Action.DOCUMENTS_READ,
    "/p/{project_id}/ocr": Action.DOCUMENTS_READ,
    "/p/{project_id}/ask": Action.ASK_USE,
    "/p/{project_id}/stages": Action.STAGES_READ,
    "/p/{project_id}/backups": Action.BACKUPS_READ,
    "/p/{project_id}/settings": Action.MEMBERS_READ,
    "/p/{project_id}/admin": Action.AUDIT_READ,
    "/p/{project_id}/digest": Action.DIGEST_PREVIEW,
    "/p/{project_id}/digest/mail": Action.DIGEST_PREVIEW,
    "/p/{project_id}/raid": Action.RAID_READ,
    "/p/{project_id}/raid/review": Action.RAID_READ,
    "/p/{project_id}/raid/items/{item_id}": Action.RAID_READ,
}
CASES = sorted(PAGE_ACTIONS.items())


def _url(template: str, world: World) -> str:
    values = {"{project_id}": str(world.project_a), "{artifact_id}": str(uuid.uuid4()), "{page}": "1",
              "{item_id}": str(uuid.uuid4())}
    for key, value in values.items():
        template = template.replace(key, value)
    return template


def _browser(app: Any, world: World, who: str, cache: dict[str, TestClient]) -> TestClient:
    if who not in cache:
        cache[who] = signed_in(app, world.users[who])
    return cache[who]


def _page_routes() -> set[str]:
    from kap.app import ROUTERS

    return {r.path for router in ROUTERS for r in router.routes
            if isinstance(r, APIRoute) and r.path.startswith("/p/{project_id}/") and "GET" in (r.methods or set())}


def test_every_project_page_route_is_in_the_table() -> None:
    routes = _page_routes()
    assert routes == set(PAGE_ACTIONS), routes ^ set(PAGE_ACTIONS)
    assert all(action in ACTIONS for action in PAGE_ACTIONS.values())


@pytest.mark.parametrize(("path", "action"), CASES, ids=[p for p, _ in CASES])
def test_page_access_matches_the_api(app: Any, client: TestClient, world: World, path: str, action: Action) -> None:
    url = _url(path, world)
    anonymous = client.get(url, follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/login?next=")
    browsers: dict[str, TestClient] = {}
    for stranger in ("outsider", "b_member"):
        page = _browser(app, world, stranger, browsers).get(url)
        assert page.status_code == 404, (stranger, page.text[:300])
        assert "Project not found" in page.text, (stranger, page.text[:300])
        assert "not a member of it" in page.text
    needed = ACTIONS[action]
    allowed = _browser(app, world, needed, browsers).get(url)
    # an unknown document, its page image or an unknown RAID item is a 404 of its own; every other page renders
    unknown = "{artifact_id}" in path or "{item_id}" in path
    assert allowed.status_code == (404 if unknown else 200), allowed.text[:500]
    if unknown and not path.endswith(".png"):
        assert "Project not found" not in allowed.text
    assert action not in allowed.text
    below = role_below(needed)
    if below is not None:
        refused = _browser(app, world, below, browsers).get(url)
        assert refused.status_code == 403
        assert f"needs {'an' if ROLE_LABELS[needed][0] in 'aeiou' else 'a'} {ROLE_LABELS[needed]}" in refused.text
        assert action not in refused.text
        assert "Pick a project" not in refused.text
    org_admin = _browser(app, world, "org_admin", browsers).get(url)
    assert org_admin.status_code == allowed.status_code
    for browser in browsers.values():
        browser.close()


def test_a_dashboard_panel_shows_only_what_its_api_allows(app: Any, world: World) -> None:
    with signed_in(app, world.users["member"]) as member:
        dash = member.get(f"/p/{world.project_a}/dashboard").text
        assert 'id="panel-activity"' not in dash
        assert 'id="panel-restore-activity"' not in dash
        assert 'id="panel-recent-documents"' in dash
    with signed_in(app, world.users["admin"]) as admin:
        dash = admin.get(f"/p/{world.project_a}/dashboard").text
        assert 'id="panel-activity"' in dash
        assert 'id="panel-restore-activity"' in dash
        assert 'id="telemetry-table"' not in admin.get(f"/p/{world.project_a}/admin").text
    with signed_in(app, world.users["org_admin"]) as org_admin:
        assert 'id="telemetry-table"' in org_admin.get(f"/p/{world.project_a}/admin").text
