"""Org settings: display name and logo for pages and mail, and who may create projects."""

from __future__ import annotations

import io
import uuid

from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import World
from tests.test_web_shell import signed_in


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 20), (20, 60, 160)).save(buf, "PNG")
    return buf.getvalue()


def test_a_member_reads_the_org_and_what_they_may_do(client: TestClient, world: World) -> None:
    org = client.get(f"/api/orgs/{world.org1}", headers=world.h("member")).json()
    assert org["name"] == "Org One"
    assert org["brand"] == "Org One"
    assert org["display_name"] is None
    assert org["role"] == "member"
    assert not org["can_manage"]
    assert not org["can_create_projects"]
    assert org["project_creators"] == "admins"
    assert org["logo_type"] is None
    admin = client.get(f"/api/orgs/{world.org1}", headers=world.h("org_admin")).json()
    assert admin["can_manage"]
    assert admin["can_create_projects"]


def test_foreign_and_unknown_orgs_get_the_same_404(client: TestClient, world: World) -> None:
    for org in (world.org2, uuid.uuid4()):
        for method in ("GET", "PATCH"):
            response = client.request(method, f"/api/orgs/{org}", headers=world.h("org_owner"),
                                      json={"project_creators": "members"} if method == "PATCH" else None)
            assert response.status_code == 404, response.text
            assert response.json()["error"]["message"] == "org not found"


def test_plain_member_and_project_owner_are_refused_in_plain_words(client: TestClient, world: World) -> None:
    for who in ("member", "owner"):  # a project owner who is a plain org member
        response = client.patch(f"/api/orgs/{world.org1}", json={"project_creators": "members"},
                                headers=world.h(who))
        assert response.status_code == 403
        assert response.json()["error"]["message"].startswith("Only the org's owners and admins can do this.")
        upload = client.put(f"/api/orgs/{world.org1}/logo", files={"file": ("logo.png", _png(), "image/png")},
                            headers=world.h(who))
        assert upload.status_code == 403
    assert client.get(f"/api/orgs/{world.org1}", headers=world.h("owner")).json()["project_creators"] == "admins"


def test_the_org_read_shows_the_brand_set_through_branding(client: TestClient, world: World) -> None:
    named = client.put(f"/api/orgs/{world.org1}/branding", json={"display_name": "Acme Consulting"},
                       headers=world.h("org_admin"))
    assert named.status_code == 200, named.text
    logo = client.put(f"/api/orgs/{world.org1}/logo", files={"file": ("logo.png", _png(), "image/png")},
                      headers=world.h("org_admin"))
    assert logo.status_code == 200, logo.text
    org = client.get(f"/api/orgs/{world.org1}", headers=world.h("member")).json()
    assert (org["brand"], org["display_name"], org["logo_type"]) == ("Acme Consulting", "Acme Consulting", "image/png")


def test_only_org_owners_and_admins_create_projects_until_widened(client: TestClient, world: World) -> None:
    refused = client.post("/api/projects", json={"name": "Side project"}, headers=world.h("member"))
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "project_create_forbidden"
    assert error["message"].startswith("Only the owners and admins of Org One can create projects.")
    assert "org settings" in error["message"]
    assert client.post("/api/projects", json={"name": "Admin's"}, headers=world.h("org_admin")).status_code == 201
    assert client.patch(f"/api/orgs/{world.org1}", json={"project_creators": "members"},
                        headers=world.h("member")).status_code == 403
    widened = client.patch(f"/api/orgs/{world.org1}", json={"project_creators": "members"},
                           headers=world.h("org_owner"))
    assert widened.json()["project_creators"] == "members"
    made = client.post("/api/projects", json={"name": "Side project"}, headers=world.h("member"))
    assert made.status_code == 201
    assert made.json()["role"] == "owner"
    bad = client.patch(f"/api/orgs/{world.org1}", json={"project_creators": "everyone"}, headers=world.h("org_owner"))
    assert bad.status_code == 422


def test_pages_show_the_rule_and_the_org_section_to_org_admins_only(app: object, world: World) -> None:
    member = signed_in(app, world.users["member"])
    home = member.get("/").text
    assert "Only the owners and admins of Org One can create projects." in home
    assert 'id="project-name"' not in home
    admin = signed_in(app, world.users["org_admin"])
    assert 'id="project-name"' in admin.get("/").text
    settings = admin.get(f"/p/{world.project_a}/settings").text
    assert 'id="org-settings"' in settings
    assert f"PATCH /api/orgs/{world.org1}" in settings
    project_admin = signed_in(app, world.users["admin"])  # a project admin, plain org member
    assert 'id="org-settings"' not in project_admin.get(f"/p/{world.project_a}/settings").text
