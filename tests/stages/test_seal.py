"""Sealed sign-off: the approved revision is frozen; edits after it need a new sign-off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from kap.core.db import Database
from kap.core.models import AuditEvent
from tests.conftest import World
from tests.stages.conftest import add_artifact, ask_signoff, make_stage, outbox_messages, recipient, stage_of, token_in


def _approve(client: TestClient, world: World, data_dir: Path, stage_id: str, name: str = "Dana Sponsor") -> str:
    email = recipient()
    ask_signoff(client, world, stage_id, email, name=name)
    [msg] = outbox_messages(data_dir, email)
    token = token_in(msg)
    assert client.get(f"/signoff/{token}").status_code == 200
    done = client.post(f"/signoff/{token}", data={"decision": "approve", "name": name, "note": "Agreed"})
    assert done.status_code == 200, done.text
    return token


def _certificate(client: TestClient, world: World, stage_id: str) -> dict[str, Any]:
    got = client.get(f"/api/stages/{stage_id}/signoff-certificate",
                     params={"project_id": str(world.project_a), "format": "json"}, headers=world.h("member"))
    assert got.status_code == 200, got.text
    body: dict[str, Any] = got.json()
    return body


def test_edit_after_approval_needs_a_new_signoff(client: TestClient, world: World, db: Database,
                                                 data_dir: Path, pa: dict[str, str]) -> None:
    doc = add_artifact(db, world.org1, world.project_a, "Test strategy.txt")
    stage = make_stage(client, world, "Design", summary="Design of Core HR.", artifact_ids=[str(doc.id)])
    _approve(client, world, data_dir, stage["id"])
    signed = stage_of(client, world, stage["id"])
    assert signed["status"] == "signed_off"
    assert not signed["changed_after_signoff"]
    assert [(r["number"], r["state"]) for r in signed["revisions"]] == [(1, "signed")]
    assert signed["signed_revision"]["documents"][0]["sha256"] == doc.sha256
    before = _certificate(client, world, stage["id"])

    extra = "Client also accepted Time Tracking scope at no extra cost"
    edited = client.patch(f"/api/stages/{stage['id']}", params=pa, headers=world.h("pm"),
                          json={"summary": extra})
    assert edited.status_code == 200, edited.text
    now = stage_of(client, world, stage["id"])
    assert now["status"] == "in_progress"
    assert now["changed_after_signoff"] is True
    assert [(r["number"], r["state"]) for r in now["revisions"]] == [(2, "draft"), (1, "signed")]
    assert now["changes"] == [{"field": "summary", "signed": "Design of Core HR.", "current": extra}]
    assert _certificate(client, world, stage["id"]) == before
    assert before["certificate"]["stage"]["summary"] == "Design of Core HR."

    # A second round of edits stays in the same draft; a new approval seals it.
    client.patch(f"/api/stages/{stage['id']}", params=pa, headers=world.h("pm"), json={"title": "Design v2"})
    assert [r["number"] for r in stage_of(client, world, stage["id"])["revisions"]] == [2, 1]
    _approve(client, world, data_dir, stage["id"])
    again = stage_of(client, world, stage["id"])
    assert again["status"] == "signed_off"
    assert not again["changed_after_signoff"]
    assert again["changes"] == []
    assert [(r["number"], r["state"], r["title"]) for r in again["revisions"]] == [
        (2, "signed", "Design v2"), (1, "signed", "Design")]
    history = client.get(f"/api/stages/{stage['id']}/signoff-requests", params=pa, headers=world.h("member"))
    assert [r["status"] for r in history.json()["requests"]] == ["approved", "approved"]


def test_order_or_owner_changes_do_not_unseal(client: TestClient, world: World, data_dir: Path,
                                              pa: dict[str, str]) -> None:
    stage = make_stage(client, world, "Build")
    _approve(client, world, data_dir, stage["id"])
    client.patch(f"/api/stages/{stage['id']}", params=pa, headers=world.h("pm"), json={"order": 7})
    assert stage_of(client, world, stage["id"])["status"] == "signed_off"


def test_signed_off_stage_is_archived_not_deleted(client: TestClient, world: World, data_dir: Path,
                                                  pa: dict[str, str]) -> None:
    stage = make_stage(client, world, "Deploy")
    _approve(client, world, data_dir, stage["id"])
    refused = client.delete(f"/api/stages/{stage['id']}", params=pa, headers=world.h("pm"))
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "stage_signed_off"
    archived = client.post(f"/api/stages/{stage['id']}/archive", params=pa, headers=world.h("pm"))
    assert archived.status_code == 200
    assert archived.json()["archived_at"]
    listed = client.get("/api/stages", params=pa, headers=world.h("member")).json()["stages"]
    assert stage["id"] not in [s["id"] for s in listed]
    everything = client.get("/api/stages", params={**pa, "include_archived": "true"}, headers=world.h("member"))
    assert stage["id"] in [s["id"] for s in everything.json()["stages"]]
    locked = client.patch(f"/api/stages/{stage['id']}", params=pa, headers=world.h("pm"), json={"summary": "x"})
    assert locked.status_code == 409
    assert locked.json()["error"]["code"] == "stage_archived"
    assert _certificate(client, world, stage["id"])["certificate"]["decision"] == "approved"
    # A stage never signed off can still be deleted.
    other = make_stage(client, world, "Scratch")
    assert client.delete(f"/api/stages/{other['id']}", params=pa, headers=world.h("pm")).status_code == 200


def test_template_never_duplicates_a_title(client: TestClient, world: World, data_dir: Path,
                                           pa: dict[str, str]) -> None:
    design = make_stage(client, world, "  design ")
    _approve(client, world, data_dir, design["id"])
    client.patch(f"/api/stages/{design['id']}", params=pa, headers=world.h("pm"), json={"title": "Solution design"})
    applied = client.post("/api/stages/apply-template", params=pa, headers=world.h("pm"))
    titles = [s["title"] for s in applied.json()["stages"]]
    assert titles.count("Design") == 0
    assert "Solution design" in titles
    assert {"Discovery", "Build", "Test", "Deploy", "Hypercare"} <= set(titles)
    again = client.post("/api/stages/apply-template", params=pa, headers=world.h("pm")).json()["stages"]
    assert sorted(s["title"] for s in again) == sorted(titles)


def test_documents_are_attached_and_detached(client: TestClient, world: World, db: Database,
                                             data_dir: Path, pa: dict[str, str]) -> None:
    one = add_artifact(db, world.org1, world.project_a, "Test strategy.txt")
    two = add_artifact(db, world.org1, world.project_a, "Cutover notes.md")
    foreign = add_artifact(db, world.org1, world.project_b, "Cutover notes.md")
    stage = make_stage(client, world, "Test")
    url = f"/api/stages/{stage['id']}/documents"
    put = client.put(url, params=pa, headers=world.h("pm"), json={"artifact_ids": [str(one.id), str(two.id)]})
    assert put.status_code == 200
    assert {a["id"] for a in put.json()["artifacts"]} == {str(one.id), str(two.id)}
    put = client.put(url, params=pa, headers=world.h("pm"), json={"artifact_ids": [str(two.id)]})
    assert [a["id"] for a in put.json()["artifacts"]] == [str(two.id)]
    bad = client.put(url, params=pa, headers=world.h("pm"), json={"artifact_ids": [str(foreign.id)]})
    assert bad.status_code == 422
    assert bad.json()["ok"] is False
    assert client.put(url, params=pa, headers=world.h("member"), json={"artifact_ids": []}).status_code == 403
    assert client.put(url, params=pa, headers=world.h("pm"), json={"artifact_ids": "x"}).status_code == 422

    # Detaching a document from a signed stage is an edit like any other.
    _approve(client, world, data_dir, stage["id"])
    client.put(url, params=pa, headers=world.h("pm"), json={"artifact_ids": [str(one.id)]})
    now = stage_of(client, world, stage["id"])
    assert now["changed_after_signoff"]
    assert {c["field"] for c in now["changes"]} == {"document"}


def test_decision_is_refused_when_content_changed_after_opening(client: TestClient, world: World, db: Database,
                                                                 data_dir: Path, pa: dict[str, str]) -> None:
    doc = add_artifact(db, world.org1, world.project_a, "Test strategy.txt")
    stage = make_stage(client, world, "Hypercare", summary="Four weeks.")
    email = recipient()
    ask_signoff(client, world, stage["id"], email)
    token = token_in(outbox_messages(data_dir, email)[0])
    assert client.get(f"/signoff/{token}").status_code == 200
    client.put(f"/api/stages/{stage['id']}/documents", params=pa, headers=world.h("pm"),
               json={"artifact_ids": [str(doc.id)]})
    refused = client.post(f"/api/signoff/{token}", json={"decision": "approve", "name": "Dana"})
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "content_changed"
    page = client.get(f"/signoff/{token}")
    assert doc.sha256 in page.text
    done = client.post(f"/api/signoff/{token}", json={"decision": "approve", "name": "Dana"})
    assert done.status_code == 200, done.text
    with db.service_session() as s:
        decided = s.scalar(select(AuditEvent).where(AuditEvent.action == "signoff.decided",
                                                    AuditEvent.details["stage_id"].as_string() == stage["id"]))
        assert decided is not None
        assert decided.details["documents_shown"] == [{"artifact_id": str(doc.id), "version": 1,
                                                       "sha256": doc.sha256}]
