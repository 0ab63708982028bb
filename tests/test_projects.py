"""Projects and members: creation, listing, rename, archive, roles, the last-owner rule, audit."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Factory, World


def _audit(client: TestClient, world: World, project: uuid.UUID, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/api/audit", params={"project_id": str(project), **params}, headers=world.h("owner"))
    assert response.status_code == 200, response.text
    return list(response.json()["events"])


def test_create_project_makes_the_caller_owner_and_audits(client: TestClient, world: World) -> None:
    widened = client.patch(f"/api/orgs/{world.org1}", json={"project_creators": "members"},
                           headers=world.h("org_admin"))
    assert widened.status_code == 200, widened.text
    made = client.post("/api/projects", json={"name": "  Globex HCM  "}, headers=world.h("member"))
    assert made.status_code == 201, made.text
    project = made.json()
    assert project["name"] == "Globex HCM"
    assert project["role"] == "owner"
    assert project["org_id"] == str(world.org1)
    listed = client.get("/api/projects", headers=world.h("member")).json()["projects"]
    assert {p["id"] for p in listed} == {str(world.project_a), project["id"]}
    events = client.get("/api/audit", params={"project_id": project["id"]}, headers=world.h("member")).json()
    assert [e["action"] for e in events["events"]] == ["project.created"]


def test_user_without_org_cannot_create_projects(client: TestClient, factory: Factory) -> None:
    loner = factory.user(None)
    response = client.post("/api/projects", json={"name": "x"}, headers={"X-Dev-User": str(loner)})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "no_org"


def test_project_in_a_foreign_org_is_refused(client: TestClient, world: World) -> None:
    response = client.post("/api/projects", json={"name": "x", "org_id": str(world.org2)}, headers=world.h("owner"))
    assert response.status_code == 404


def test_rename_and_archive(client: TestClient, world: World) -> None:
    renamed = client.patch(f"/api/projects/{world.project_a}", json={"name": "Northwind"}, headers=world.h("admin"))
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Northwind"
    assert client.delete(f"/api/projects/{world.project_a}", headers=world.h("admin")).status_code == 403
    archived = client.delete(f"/api/projects/{world.project_a}", headers=world.h("owner"))
    assert archived.status_code == 200
    assert archived.json()["archived_at"]
    assert client.get("/api/projects", headers=world.h("owner")).json()["projects"] == []
    with_archived = client.get("/api/projects", params={"include_archived": "true"}, headers=world.h("owner"))
    assert [p["id"] for p in with_archived.json()["projects"]] == [str(world.project_a)]
    actions = [e["action"] for e in _audit(client, world, world.project_a)]
    assert actions[:2] == ["project.archived", "project.renamed"]


def test_members_list_and_add_by_user_id(client: TestClient, world: World, factory: Factory) -> None:
    newcomer = factory.user(world.org1, "member")
    added = client.post(f"/api/projects/{world.project_a}/members", json={"user_id": str(newcomer), "role": "lead"},
                        headers=world.h("admin"))
    assert added.status_code == 201, added.text
    members = client.get(f"/api/projects/{world.project_a}/members", headers=world.h("member")).json()["members"]
    assert {m["user_id"]: m["role"] for m in members}[str(newcomer)] == "lead"
    again = client.post(f"/api/projects/{world.project_a}/members", json={"user_id": str(newcomer)},
                        headers=world.h("admin"))
    assert again.status_code == 409
    foreign = client.post(f"/api/projects/{world.project_a}/members", json={"user_id": str(world.users["outsider"])},
                          headers=world.h("admin"))
    assert foreign.status_code == 404


def test_invite_by_email_mails_a_sign_in_link(client: TestClient, world: World, settings: Any) -> None:
    email = f"client-{uuid.uuid4().hex[:8]}@example.com"
    invited = client.post(f"/api/projects/{world.project_a}/members", json={"email": email, "role": "member"},
                          headers=world.h("admin"))
    assert invited.status_code == 201, invited.text
    mails = [p.read_text() for p in (settings.kap_data_dir / "outbox").glob("*.eml")]
    assert any(f"To: {email}" in m and "/auth/magic/" in m for m in mails)
    assert "member.invited" in [e["action"] for e in _audit(client, world, world.project_a)]


def test_member_add_needs_exactly_one_of_user_id_or_email(client: TestClient, world: World) -> None:
    response = client.post(f"/api/projects/{world.project_a}/members", json={"role": "member"},
                           headers=world.h("admin"))
    assert response.status_code == 422


def test_nobody_grants_above_their_own_role(client: TestClient, world: World) -> None:
    response = client.patch(f"/api/projects/{world.project_a}/members/{world.users['member']}",
                            json={"role": "owner"}, headers=world.h("admin"))
    assert response.status_code == 403
    ok = client.patch(f"/api/projects/{world.project_a}/members/{world.users['member']}",
                      json={"role": "pm"}, headers=world.h("admin"))
    assert ok.status_code == 200
    assert ok.json()["role"] == "pm"


def test_owner_is_changed_or_removed_only_by_an_owner(client: TestClient, world: World) -> None:
    target = f"/api/projects/{world.project_a}/members/{world.users['owner']}"
    assert client.patch(target, json={"role": "member"}, headers=world.h("admin")).status_code == 403
    assert client.delete(target, headers=world.h("admin")).status_code == 403


def test_last_owner_cannot_leave_or_be_demoted(client: TestClient, world: World) -> None:
    target = f"/api/projects/{world.project_a}/members/{world.users['owner']}"
    left = client.delete(target, headers=world.h("owner"))
    assert left.status_code == 409
    assert left.json()["error"]["code"] == "last_owner"
    demoted = client.patch(target, json={"role": "admin"}, headers=world.h("owner"))
    assert demoted.status_code == 409
    promote = client.patch(f"/api/projects/{world.project_a}/members/{world.users['admin']}",
                           json={"role": "owner"}, headers=world.h("owner"))
    assert promote.status_code == 200
    assert client.delete(target, headers=world.h("owner")).status_code == 200


def test_a_member_may_leave_but_not_remove_others(client: TestClient, world: World) -> None:
    other = f"/api/projects/{world.project_a}/members/{world.users['lead']}"
    assert client.delete(other, headers=world.h("member")).status_code == 403
    me = f"/api/projects/{world.project_a}/members/{world.users['member']}"
    assert client.delete(me, headers=world.h("member")).status_code == 200
    assert client.get(f"/api/projects/{world.project_a}", headers=world.h("member")).status_code == 404


def test_audit_filters_paging_and_csv(client: TestClient, world: World) -> None:
    for name in ("One", "Two", "Three"):
        client.patch(f"/api/projects/{world.project_a}", json={"name": name}, headers=world.h("owner"))
    page = client.get("/api/audit", params={"project_id": str(world.project_a), "action": "project",
                                            "limit": 2}, headers=world.h("owner")).json()
    assert page["total"] == 3
    assert len(page["events"]) == 2
    assert page["events"][0]["details"]["new"] == "Three"
    none = _audit(client, world, world.project_a, actor=str(world.users["member"]))
    assert none == []
    exported = client.get("/api/audit", params={"project_id": str(world.project_a), "format": "csv"},
                          headers=world.h("owner"))
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0][:2] == ["created_at", "action"]
    assert len(rows) == 4
    assert client.get("/api/audit", params={"project_id": str(world.project_a)},
                      headers=world.h("pm")).status_code == 403


def test_org_audit_and_telemetry_are_for_org_admins(client: TestClient, world: World) -> None:
    client.patch(f"/api/projects/{world.project_b}", json={"name": "B2"}, headers=world.h("org_owner"))
    org_events = client.get(f"/api/orgs/{world.org1}/audit", headers=world.h("org_admin"))
    assert org_events.status_code == 200
    assert any(e["project_id"] == str(world.project_b) for e in org_events.json()["events"])
    assert client.get(f"/api/orgs/{world.org1}/audit", headers=world.h("owner")).status_code == 403
    assert client.get(f"/api/orgs/{world.org1}/audit", headers=world.h("outsider")).status_code == 404
    telemetry = client.get("/api/telemetry", params={"org_id": str(world.org1)}, headers=world.h("org_owner"))
    assert telemetry.status_code == 200
    assert "events" in telemetry.json()
    assert client.get("/api/telemetry", params={"org_id": str(world.org1)},
                      headers=world.h("member")).status_code == 403


def test_formula_cells_are_neutralised_in_csv(client: TestClient, world: World) -> None:
    client.patch(f"/api/projects/{world.project_a}", json={"name": "=HYPERLINK(1)"}, headers=world.h("owner"))
    exported = client.get("/api/audit", params={"project_id": str(world.project_a), "format": "csv"},
                          headers=world.h("owner")).text
    assert "'{" in exported or "=HYPERLINK" not in exported.split("\n")[1].split(",")[0]
