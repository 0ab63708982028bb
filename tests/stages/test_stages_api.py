"""Stages: the plan, its template, editing rules and attached documents."""

from __future__ import annotations

from fastapi.testclient import TestClient

from kap.core.db import Database
from kap.stages.service import DEFAULT_STAGES
from tests.conftest import World
from tests.stages.conftest import add_artifact, ask_signoff, make_stage, recipient


def test_apply_template_adds_the_default_stages_once(client: TestClient, world: World, pa: dict[str, str]) -> None:
    make_stage(client, world, "discovery")
    first = client.post("/api/stages/apply-template", params=pa, headers=world.h("pm"))
    assert first.status_code == 200
    titles = [s["title"] for s in first.json()["stages"]]
    assert titles == ["discovery", *DEFAULT_STAGES[1:]]
    again = client.post("/api/stages/apply-template", params=pa, headers=world.h("pm")).json()["stages"]
    assert [s["title"] for s in again] == titles
    assert [s["order"] for s in again] == list(range(len(titles)))


def test_members_read_and_pms_edit(client: TestClient, world: World, pa: dict[str, str]) -> None:
    stage = make_stage(client, world, "Design", planned_start="2026-01-05", planned_end="2026-02-27",
                       owner_id=str(world.users["lead"]), summary="Workday tenant design")
    listed = client.get("/api/stages", params=pa, headers=world.h("member"))
    assert listed.status_code == 200
    assert stage["id"] in listed.text
    assert client.post("/api/stages", params=pa, json={"title": "x"}, headers=world.h("lead")).status_code == 403
    patched = client.patch(f"/api/stages/{stage['id']}", params=pa, headers=world.h("pm"),
                           json={"title": "Design v2", "status": "in_progress", "planned_end": None, "order": 7})
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["title"], body["status"], body["planned_end"], body["order"]) == ("Design v2", "in_progress", None, 7)
    assert body["owner_id"] == str(world.users["lead"])
    assert body["planned_start"] == "2026-01-05"


def test_bad_stage_input_is_refused_with_json_errors(client: TestClient, world: World, db: Database,
                                                     pa: dict[str, str]) -> None:
    pm = world.h("pm")
    cases = [
        {"title": ""},
        {"title": "x" * 201},
        {"title": "x", "status": "signed_off"},
        {"title": "x", "planned_start": "2026-03-01", "planned_end": "2026-02-01"},
        {"title": "x", "unknown": 1},
        {"title": "x", "owner_id": str(world.users["outsider"])},
        {"title": "x", "artifact_ids": ["not-a-uuid"]},
    ]
    for body in cases:
        response = client.post("/api/stages", params=pa, json=body, headers=pm)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["ok"] is False
    other = add_artifact(db, world.org1, world.project_b, "Test strategy.txt")
    response = client.post("/api/stages", params=pa, json={"title": "x", "artifact_ids": [str(other.id)]}, headers=pm)
    assert response.status_code == 422
    assert response.json()["error"]["details"]["artifact_ids"] == [str(other.id)]
    stage = make_stage(client, world)
    response = client.patch(f"/api/stages/{stage['id']}", params=pa, json={"planned_start": "2030-01-01",
                                                                          "planned_end": "2029-01-01"}, headers=pm)
    assert response.status_code == 422


def test_in_review_status_belongs_to_the_signoff(client: TestClient, world: World, pa: dict[str, str]) -> None:
    stage = make_stage(client, world)
    ask_signoff(client, world, stage["id"], recipient())
    response = client.patch(f"/api/stages/{stage['id']}", params=pa, json={"status": "pending"},
                            headers=world.h("pm"))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "signoff_pending"
    summary = client.patch(f"/api/stages/{stage['id']}", params=pa, json={"summary": "updated"},
                           headers=world.h("pm"))
    assert summary.status_code == 200
    assert summary.json()["status"] == "in_review"
    latest = summary.json()["latest_request"]
    assert latest["status"] == "pending"
    assert "token" not in str(latest)


def test_attachments_are_listed_and_replaced(client: TestClient, world: World, db: Database,
                                             pa: dict[str, str]) -> None:
    a = add_artifact(db, world.org1, world.project_a, "Test strategy.txt")
    b = add_artifact(db, world.org1, world.project_a, "Cutover notes.md")
    stage = make_stage(client, world, artifact_ids=[str(a.id)])
    assert [d["sha256"] for d in stage["artifacts"]] == [a.sha256]
    patched = client.patch(f"/api/stages/{stage['id']}", params=pa, json={"artifact_ids": [str(b.id), str(a.id)]},
                           headers=world.h("pm")).json()
    assert [d["name"] for d in patched["artifacts"]] == ["Cutover notes.md", "Test strategy.txt"]


def test_deleted_stage_disappears(client: TestClient, world: World, pa: dict[str, str]) -> None:
    stage = make_stage(client, world)
    assert client.delete(f"/api/stages/{stage['id']}", params=pa, headers=world.h("pm")).status_code == 200
    assert client.delete(f"/api/stages/{stage['id']}", params=pa, headers=world.h("pm")).status_code == 404
    assert stage["id"] not in client.get("/api/stages", params=pa, headers=world.h("pm")).text


def test_signed_off_stage_can_be_reopened_but_not_asked_again(client: TestClient, world: World,
                                                              pa: dict[str, str]) -> None:
    stage = make_stage(client, world)
    decided = client.post(f"/api/stages/{stage['id']}/decision", params=pa, json={"decision": "approve"},
                          headers=world.h("admin"))
    assert decided.status_code == 200
    again = client.post(f"/api/stages/{stage['id']}/signoff-requests", params=pa, json={"email_to": recipient()},
                        headers=world.h("pm"))
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_signed_off"
    reopened = client.patch(f"/api/stages/{stage['id']}", params=pa, json={"status": "in_progress"},
                            headers=world.h("pm"))
    assert reopened.json()["status"] == "in_progress"
    ask_signoff(client, world, stage["id"], recipient())
