"""An archived project is read-only: changes are refused with 409, its sign-off links are paused,
its schedules stop; unarchiving brings all of it back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import time_machine
from fastapi.testclient import TestClient
from sqlalchemy import select

from kap.backups.keys import project_prefix
from kap.backups.writer import backup_project, run_nightly
from kap.comms.scheduler import digest_tick
from kap.core.db import Database, utcnow
from kap.core.models import AuditEvent
from kap.core.runtime import Runtime
from kap.documents.models import Artifact
from kap.stages.models import SignoffRequest, Stage
from kap.stages.signoff import expire_overdue
from tests.comms.conftest import digest_log
from tests.conftest import World
from tests.stages.conftest import ask_signoff, make_stage, recipient
from tests.test_web_shell import signed_in

ARCHIVED = "the project is archived; unarchive it to make changes"


def _q(world: World) -> dict[str, str]:
    return {"project_id": str(world.project_a)}


def archive(client: TestClient, world: World) -> None:
    response = client.delete(f"/api/projects/{world.project_a}", headers=world.h("owner"))
    assert response.status_code == 200, response.text
    assert response.json()["archived_at"]


def unarchive(client: TestClient, world: World, who: str = "owner") -> Any:
    return client.post(f"/api/projects/{world.project_a}/unarchive", headers=world.h(who))


def assert_archived_refusal(response: Any) -> None:
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "project_archived"
    assert error["message"] == ARCHIVED


def _upload(client: TestClient, world: World, name: str = "Cutover plan.txt") -> Any:
    return client.post("/api/ingest-sync", params=_q(world), headers=world.h("lead"),
                       files={"file": (name, b"Cutover weekend is 14 March.", "text/plain")})


def _stored_files(runtime: Runtime, world: World) -> list[str]:
    return list(runtime.storage.artifacts.list(f"artifacts/{world.org1.hex}/{world.project_a.hex}/"))


def _documents(db: Database, world: World) -> int:
    with db.service_session() as s:
        return len(s.scalars(select(Artifact.id).where(Artifact.project_id == world.project_a)).all())


def test_an_archived_project_refuses_an_upload_and_stores_nothing(client: TestClient, world: World,
                                                                  runtime: Runtime, db: Database) -> None:
    assert _upload(client, world, "Before.txt").status_code == 200
    files, rows = _stored_files(runtime, world), _documents(db, world)
    archive(client, world)
    for path in ("/api/ingest-sync", "/api/ingest"):
        response = client.post(path, params=_q(world), headers=world.h("lead"),
                               files={"file": ("After.txt", b"Go-live is Monday.", "text/plain")})
        assert_archived_refusal(response)
    assert _stored_files(runtime, world) == files
    assert _documents(db, world) == rows


def test_reads_keep_working_on_an_archived_project(client: TestClient, world: World) -> None:
    doc = _upload(client, world).json()["document"]["id"]
    archive(client, world)
    listed = client.get("/api/documents", params=_q(world), headers=world.h("member"))
    assert [d["name"] for d in listed.json()["documents"]] == ["Cutover plan.txt"]
    download = client.get(f"/api/documents/{doc}/download", params=_q(world), headers=world.h("member"))
    assert download.content == b"Cutover weekend is 14 March."
    found = client.get("/api/search", params={**_q(world), "q": "cutover"}, headers=world.h("member"))
    assert found.status_code == 200, found.text
    assert "Cutover plan.txt" in found.text
    asked = client.post("/api/ask", params=_q(world), headers=world.h("member"),
                        json={"question": "When is the cutover weekend?"})
    assert asked.status_code == 200, asked.text
    assert "14 March" in asked.text
    history = client.get("/api/audit", params=_q(world), headers=world.h("admin"))
    assert "project.archived" in [e["action"] for e in history.json()["events"]]


def test_an_archived_project_refuses_stage_edits(client: TestClient, world: World, db: Database) -> None:
    stage = make_stage(client, world, "Design")
    archive(client, world)
    edit = client.patch(f"/api/stages/{stage['id']}", params=_q(world), headers=world.h("pm"),
                        json={"title": "Design (changed)"})
    assert_archived_refusal(edit)
    assert_archived_refusal(client.post("/api/stages", params=_q(world), headers=world.h("pm"),
                                        json={"title": "Build"}))
    with db.service_session() as s:
        titles = s.scalars(select(Stage.title).where(Stage.project_id == world.project_a)).all()
    assert titles == ["Design"]


def test_members_invitations_and_settings_are_refused(client: TestClient, world: World) -> None:
    archive(client, world)
    invite = client.post(f"/api/projects/{world.project_a}/members", headers=world.h("admin"),
                         json={"email": "new.person@example.com", "role": "member"})
    assert_archived_refusal(invite)
    rename = client.patch(f"/api/projects/{world.project_a}", headers=world.h("admin"), json={"name": "Renamed"})
    assert_archived_refusal(rename)
    settings = client.put("/api/comms/settings", params=_q(world), headers=world.h("pm"),
                          json={"timezone": "Europe/Paris"})
    assert_archived_refusal(settings)
    assert_archived_refusal(client.post("/api/backups/run", params=_q(world), headers=world.h("admin")))
    assert client.get("/api/comms/settings", params=_q(world), headers=world.h("pm")).status_code == 200
    assert client.get(f"/api/projects/{world.project_a}", headers=world.h("member")).json()["name"] == "A"


def test_only_who_may_archive_unarchives_and_then_changes_work_again(client: TestClient, world: World,
                                                                     db: Database) -> None:
    archive(client, world)
    refused = unarchive(client, world, "admin")
    assert refused.status_code == 403, refused.text
    done = unarchive(client, world)
    assert done.status_code == 200, done.text
    assert done.json()["archived_at"] is None
    assert _upload(client, world).status_code == 200
    with db.service_session() as s:
        actions = s.scalars(select(AuditEvent.action).where(AuditEvent.project_id == world.project_a)
                            .order_by(AuditEvent.created_at)).all()
    assert [a for a in actions if a.startswith("project.")] == ["project.archived", "project.unarchived"]


def _link(client: TestClient, world: World) -> tuple[str, dict[str, Any]]:
    stage = make_stage(client, world, "Design", summary="Core HR design.")
    asked = ask_signoff(client, world, stage["id"], recipient())
    token = asked["token_link"].rstrip("/").rsplit("/", 1)[-1]
    return token, asked


def _request(db: Database, request_id: str) -> SignoffRequest:
    with db.service_session() as s:
        row = s.get(SignoffRequest, uuid.UUID(request_id))
        assert row is not None
        return row


def test_sign_off_links_pause_while_archived_and_resume_after(client: TestClient, world: World,
                                                               db: Database) -> None:
    token, asked = _link(client, world)
    archive(client, world)
    page = client.get(f"/signoff/{token}")
    assert page.status_code == 200
    assert "This sign-off is paused while the project is archived." in page.text
    assert 'name="decision"' not in page.text
    decide = {"decision": "approve", "name": "Dana Sponsor", "note": ""}
    refused = client.post(f"/api/signoff/{token}", json=decide)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "project_archived"
    form = client.post(f"/signoff/{token}", data=decide)
    assert form.status_code == 409
    assert "paused while the project is archived" in form.text
    row = _request(db, asked["request_id"])
    assert (row.status, row.decided_at) == ("pending", None)
    expires = row.expires_at

    assert unarchive(client, world).status_code == 200
    page = client.get(f"/signoff/{token}")
    assert 'name="decision"' in page.text
    done = client.post(f"/api/signoff/{token}", json=decide)
    assert done.status_code == 200, done.text
    assert done.json()["signoff"]["status"] == "approved"
    row = _request(db, asked["request_id"])
    assert row.status == "approved"
    assert row.expires_at == expires


def test_an_archived_project_has_no_expiry_sweep_until_unarchived(client: TestClient, world: World,
                                                                   db: Database) -> None:
    _, asked = _link(client, world)
    archive(client, world)
    later = utcnow() + timedelta(days=60)
    expire_overdue(db, later)
    assert _request(db, asked["request_id"]).status == "pending"
    assert unarchive(client, world).status_code == 200
    expire_overdue(db, later)
    assert _request(db, asked["request_id"]).status == "expired"


def test_the_digest_tick_skips_an_archived_project(client: TestClient, world: World, runtime: Runtime) -> None:
    archive(client, world)
    monday = datetime(2027, 1, 4, 9, 5, tzinfo=UTC)
    with time_machine.travel(monday, tick=False):
        digest_tick(runtime, utcnow(), projects=[world.project_a], dispatch=lambda send_id: None)
    assert digest_log(runtime.db, world.project_a) == []
    assert unarchive(client, world).status_code == 200
    with time_machine.travel(monday + timedelta(minutes=5), tick=False):
        report = digest_tick(runtime, utcnow(), projects=[world.project_a], dispatch=lambda send_id: None)
    assert report.planned >= 1


def test_the_nightly_backup_neither_writes_nor_trims_an_archived_project(client: TestClient, world: World,
                                                                          runtime: Runtime) -> None:
    start = datetime(2026, 3, 1, 2, 30, tzinfo=UTC)
    backup_project(runtime, world.project_a, now=start, trigger="nightly")
    prefix = project_prefix(world.org1, world.project_a)
    kept = list(runtime.storage.backups.list(prefix))
    assert len(kept) == 1
    archive(client, world)
    mine = [world.project_a]
    summary = run_nightly(runtime, start + timedelta(days=30), projects=mine)
    assert summary == {"backed_up": 0, "skipped": 0, "failed": 0, "trimmed": 0}
    assert list(runtime.storage.backups.list(prefix)) == kept  # neither a new backup nor retention
    assert unarchive(client, world).status_code == 200
    run_nightly(runtime, start + timedelta(days=31), projects=mine)
    assert [k.rsplit("/", 1)[-1] for k in runtime.storage.backups.list(prefix)] == ["20260401.zip"]


def test_pages_show_the_banner_and_no_change_controls(app: Any, client: TestClient, world: World) -> None:
    _upload(client, world)
    archive(client, world)
    owner, lead = signed_in(app, world.users["owner"]), signed_in(app, world.users["lead"])
    dashboard = owner.get(f"/p/{world.project_a}/dashboard")
    assert 'id="archived-banner"' in dashboard.text
    assert f'data-api="POST /api/projects/{world.project_a}/unarchive"' in dashboard.text
    documents = lead.get(f"/p/{world.project_a}/documents")
    assert "Cutover plan.txt" in documents.text
    assert "POST /api/ingest" not in documents.text
    assert "/unarchive" not in documents.text  # a lead may not unarchive
    assert "A project owner can unarchive it." in documents.text
    with_archived = owner.get("/")
    assert 'id="archived-projects"' in with_archived.text
