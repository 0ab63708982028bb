"""The Backups view: list, contents, download, store-and-re-ingest, restore activity, run now."""

from __future__ import annotations

import hashlib
import io
import zipfile

from fastapi.testclient import TestClient
from sqlalchemy import select

from kap.backups.models import BackupRun
from kap.core.models import AuditEvent
from tests.backups.conftest import CORPUS, build_project, pa, run_backup, runtime_of, upload
from tests.conftest import World


def _contents(client: TestClient, world: World, key: str) -> dict[str, object]:
    response = client.get("/api/backups/contents", params={**pa(world), "backup_key": key}, headers=world.h("admin"))
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_contents_and_downloads(bk_client: TestClient, world: World) -> None:
    client = bk_client
    built = build_project(client, world, corpus=False)
    made = run_backup(client, world)
    body = _contents(client, world, made["key"])
    entries = {e["name"]: e for e in body["entries"]}  # type: ignore[attr-defined]
    doc = built["docs"]["Test strategy.txt"]
    entry = next(n for n, e in entries.items() if e["type"] == "artifact" and e["original_name"] == "Test strategy.txt")
    assert entries[entry]["artifact_id"] == doc["id"]
    assert entries[entry]["sha256"] == doc["sha256"]
    assert entries["data/artifacts.jsonl"]["rows"] == 2
    assert entries["data/artifacts.jsonl"]["type"] == "data"

    whole = client.get("/api/backups/download", params={**pa(world), "backup_key": made["key"]},
                       headers=world.h("admin"))
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "application/zip"
    assert len(whole.content) == made["size"]
    assert zipfile.ZipFile(io.BytesIO(whole.content)).testzip() is None
    one = client.get("/api/backups/download", params={**pa(world), "backup_key": made["key"], "entry": entry},
                     headers=world.h("admin"))
    assert one.status_code == 200, one.text
    assert one.content == (CORPUS / "Test strategy.txt").read_bytes()
    assert "Test%20strategy.txt" in one.headers["content-disposition"]
    missing = client.get("/api/backups/download", params={**pa(world), "backup_key": made["key"],
                                                          "entry": "artifacts/../../etc/passwd"},
                         headers=world.h("admin"))
    assert missing.status_code == 404


def test_compressed_files_are_stored_not_deflated_again(client: TestClient, world: World) -> None:
    upload(client, world, "Kickoff minutes 2026-01-13.docx", (CORPUS / "Kickoff minutes 2026-01-13.docx").read_bytes())
    upload(client, world, "Test strategy.txt", b"plain words " * 2000)
    made = run_backup(client, world)
    with runtime_of(client).storage.backups.open(made["key"]) as handle:
        infos = {i.filename: i for i in zipfile.ZipFile(io.BytesIO(handle.read())).infolist()}
    kinds = {name.rsplit("/", 1)[-1]: info.compress_type for name, info in infos.items()
             if name.startswith("artifacts/")}
    assert kinds["Kickoff_minutes_2026-01-13.docx"] == zipfile.ZIP_STORED
    assert kinds["Test_strategy.txt"] == zipfile.ZIP_DEFLATED


def test_store_and_reingest_makes_a_new_version_of_the_document(bk_client: TestClient, world: World) -> None:
    client = bk_client
    built = build_project(client, world, corpus=False)
    doc = built["docs"]["Cutover notes.md"]
    made = run_backup(client, world)
    name = f"artifacts/{doc['id'].replace('-', '')}/Cutover_notes.md"
    response = client.post("/api/backups/store-and-reingest", headers=world.h("owner"),
                           params={**pa(world), "backup_key": made["key"], "artifact_name": name})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True
    assert body["artifact_id"] == doc["id"]
    assert body["link"] == f"/p/{world.project_a}/documents/{doc['id']}"
    assert body["status"] == "ready"
    assert body["mode"] == "new_version"
    assert body["version"] == doc["version"] + 1
    detail = client.get(f"/api/documents/{doc['id']}", params=pa(world), headers=world.h("member")).json()
    assert "Cutover" in detail["pages"][0]["text"]
    assert detail["version"] == doc["version"] + 1
    download = client.get(f"/api/documents/{doc['id']}/download", params=pa(world), headers=world.h("member"))
    assert hashlib.sha256(download.content).hexdigest() == doc["sha256"]
    _assert_activity(client, world, doc["id"])


def _assert_activity(client: TestClient, world: World, artifact_id: str) -> None:
    activity = client.get("/api/restore-activity", params=pa(world), headers=world.h("admin")).json()["activity"]
    assert activity[0]["kind"] == "reingest"
    assert activity[0]["link"] == f"/p/{world.project_a}/documents/{artifact_id}"
    with runtime_of(client).db.service_session() as s:
        actions = s.scalars(select(AuditEvent.action).where(AuditEvent.project_id == world.project_a)).all()
    assert "backup.reingest" in actions
    assert "backup.created" in actions
    from kap.backups.pages import restore_activity_panel
    from kap.core.deps import resolve_project
    from kap.core.security import Identity

    with runtime_of(client).db.service_session() as s:
        ctx = resolve_project(s, Identity(via="dev", user_id=world.users["member"]), world.project_a)
        panel = restore_activity_panel(ctx)
    assert panel is not None
    assert panel.title == "Restore Activity"
    assert panel.rows[0].href == f"/p/{world.project_a}/documents/{artifact_id}"
    assert panel.rows[0].meta


def test_store_and_reingest_of_a_deleted_document_makes_a_new_one(client: TestClient, world: World) -> None:
    built = build_project(client, world, corpus=False)
    doc = built["docs"]["Test strategy.txt"]
    made = run_backup(client, world)
    assert client.delete(f"/api/documents/{doc['id']}", params=pa(world), headers=world.h("lead")).status_code == 200
    response = client.post("/api/backups/store-and-reingest", headers=world.h("owner"),
                           params={**pa(world), "backup_key": made["key"],
                                   "artifact_name": "artifacts/Test strategy.txt"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mode"] == "new_document"
    assert body["artifact_id"] != doc["id"]
    assert body["status"] == "ready"
    search = client.get("/api/search", params={**pa(world), "q": "strategy"}, headers=world.h("member")).json()
    assert any(h["artifact_id"] == body["artifact_id"] for h in search["hits"])
    unknown = client.post("/api/backups/store-and-reingest", headers=world.h("owner"),
                          params={**pa(world), "backup_key": made["key"], "artifact_name": "artifacts/nope.txt"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "entry_not_found"


def test_run_now_replaces_todays_backup(client: TestClient, world: World) -> None:
    first = run_backup(client, world)
    upload(client, world, "Test strategy.txt", (CORPUS / "Test strategy.txt").read_bytes())
    second = run_backup(client, world)
    assert second["key"] == first["key"]
    assert second["replaced"] is True
    listed = client.get("/api/backups", params=pa(world), headers=world.h("admin")).json()
    assert len(listed["backups"]) == 1
    assert listed["backups"][0]["size"] == second["size"]
    assert listed["last_backup"]["key"] == second["key"]
    assert listed["next_backup"]
    with runtime_of(client).db.service_session() as s:
        done = s.scalars(select(BackupRun).where(BackupRun.project_id == world.project_a,
                                                 BackupRun.status == "done")).all()
    assert len(done) == 1
    assert done[0].row_counts["artifacts"] == 1
    assert client.post("/api/backups/run", params=pa(world), headers=world.h("pm")).status_code == 403


def test_digest_and_scheduler_status_show_backups_and_restores(client: TestClient, world: World) -> None:
    params = {"project_id": str(world.project_a)}
    upload = client.post("/api/ingest-sync", params=params, headers=world.h("owner"),
                         files={"file": ("notes.txt", b"Cutover starts on Friday at 18:00.", "text/plain")})
    assert upload.status_code in (200, 201), upload.text
    run = client.post("/api/backups/run", params=params, headers=world.h("owner")).json()
    contents = client.get("/api/backups/contents", params={**params, "backup_key": run["key"]},
                          headers=world.h("owner")).json()
    entry = next(e for e in contents["entries"] if e["type"] == "artifact")
    stored = client.post("/api/backups/store-and-reingest", headers=world.h("owner"),
                         params={**params, "backup_key": run["key"], "artifact_name": entry["name"]})
    assert stored.status_code == 200, stored.text
    status = client.get("/api/scheduler/status", params=params, headers=world.h("member")).json()
    assert status["backups"]["last"]["key"] == run["key"]
    digest = client.get("/api/digest/preview", params=params, headers=world.h("pm")).json()
    assert digest["counts"]["restores"] == 1
    section = next(s for s in digest["sections"] if s["key"] == "restores")
    assert section["items"][0]["title"] == "notes.txt"
