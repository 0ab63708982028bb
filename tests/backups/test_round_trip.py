"""Back up a project, restore it into a new one: it comes back identical."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from kap.comms.models import CommsSettings, Subscription
from kap.core.models import AuditEvent, Project
from kap.documents.models import Artifact, ArtifactChunk
from kap.stages.models import SignoffRequest, Stage
from tests.backups.conftest import build_project, pa, row_counts, run_backup, runtime_of
from tests.conftest import World

QUERIES = ["cutover", "data conversion", "integration", "steering committee", "Workday"]


def _set_vectors(client: TestClient, project: uuid.UUID) -> None:
    """Give every chunk a vector, as an embedding model would, so restore must carry them."""
    rt = runtime_of(client)
    with rt.db.service_transaction() as s:
        for chunk_id, seq in s.execute(select(ArtifactChunk.id, ArtifactChunk.seq)
                                       .where(ArtifactChunk.project_id == project)).all():
            vector = hashlib.sha256(chunk_id.bytes).digest() * 12 + seq.to_bytes(4, "little")
            s.execute(update(ArtifactChunk).where(ArtifactChunk.id == chunk_id)
                      .values(embedding=vector, embedding_model="test-model-384"))


def _documents(client: TestClient, world: World, project: uuid.UUID) -> dict[str, dict[str, Any]]:
    rt = runtime_of(client)
    out = {}
    with rt.db.service_session() as s:
        for art in s.scalars(select(Artifact).where(Artifact.project_id == project)):
            with rt.storage.artifacts.open(art.storage_key) as handle:
                data = handle.read()
            chunks = s.execute(select(ArtifactChunk.seq, ArtifactChunk.text, ArtifactChunk.embedding,
                                      ArtifactChunk.embedding_model).where(ArtifactChunk.artifact_id == art.id)
                               .order_by(ArtifactChunk.seq)).all()
            parent = s.get_one(Artifact, art.parent_id).name if art.parent_id else None
            out[art.name] = {"sha256": art.sha256, "bytes_sha256": hashlib.sha256(data).hexdigest(),
                             "status": art.status, "chunks": [tuple(c) for c in chunks], "parent": parent,
                             "version": art.version, "key_project": art.storage_key.split("/")[2]}
    return out


def _search(client: TestClient, world: World, project: uuid.UUID, headers: dict[str, str]) -> list[list[Any]]:
    results = []
    for q in QUERIES:
        response = client.get("/api/search", params={"project_id": str(project), "q": q}, headers=headers)
        assert response.status_code == 200, response.text
        # Hits with equal scores are ordered by chunk id, which a copy does not keep.
        results.append(sorted((h["name"], h["page"], h["locator"], h["snippet"], round(h["score"], 6))
                              for h in response.json()["hits"]))
    return results


def _ask(client: TestClient, world: World, project: uuid.UUID) -> list[Any]:
    answers = []
    for question in ("When does the cutover weekend start?", "Who chairs the steering committee?"):
        response = client.post("/api/ask", params={"project_id": str(project)}, headers=world.h("member"),
                               json={"question": question})
        assert response.status_code == 200, response.text
        body = response.json()
        answers.append((body["answer"].replace(str(project), ""), body["found"],
                        sorted((c["name"], c["page"], c["locator"], c["quote"]) for c in body["citations"])))
    return answers


def test_restore_into_a_new_project_is_identical(bk_client: TestClient, world: World) -> None:
    client = bk_client
    rt = runtime_of(client)
    build_project(client, world)
    _set_vectors(client, world.project_a)
    before_rows = row_counts(rt, world.project_a)
    before_docs = _documents(client, world, world.project_a)
    before_search = _search(client, world, world.project_a, world.h("owner"))
    assert before_rows["artifacts"] >= 11
    assert before_rows["artifact_chunks"] > 0
    assert before_rows["stages"] == 2

    made = run_backup(client, world)
    assert made["row_counts"] == before_rows
    listed = client.get("/api/backups", params=pa(world), headers=world.h("admin")).json()
    assert [b["key"] for b in listed["backups"]] == [made["key"]]
    assert listed["backups"][0]["entries"] == made["entries"]
    assert listed["backups"][0]["size"] == made["size"]

    response = client.post("/api/backups/restore", params={**pa(world), "backup_key": made["key"]},
                           headers=world.h("owner"), json={"target": "new"})
    assert response.status_code == 200, response.text
    body = response.json()
    new = uuid.UUID(body["project_id"])
    assert new != world.project_a
    assert body["ok"] is True
    assert body["files"] == before_rows["artifacts"]

    assert row_counts(rt, new) == before_rows
    after_docs = _documents(client, world, new)
    for doc in after_docs.values():
        assert doc.pop("key_project") == new.hex
    for doc in before_docs.values():
        doc.pop("key_project")
    assert after_docs == before_docs  # bytes, sha256, text, vectors, attachments, versions
    # Ranking statistics are index-wide (the copy adds to them), so scores are compared after the restore.
    assert _search(client, world, new, world.h("owner")) == _search(client, world, world.project_a, world.h("owner"))
    assert [[hit[:4] for hit in hits] for hits in _search(client, world, new, world.h("owner"))] == \
        [[hit[:4] for hit in hits] for hits in before_search]
    assert _ask(client, world, new) == _ask(client, world, world.project_a)
    _assert_stages_and_comms(client, world.project_a, new)
    _assert_ids_are_new(client, world.project_a, new)


def _assert_stages_and_comms(client: TestClient, old: uuid.UUID, new: uuid.UUID) -> None:
    rt = runtime_of(client)
    with rt.db.service_session() as s:
        def stage_view(p: uuid.UUID) -> list[tuple[Any, ...]]:
            rows = s.scalars(select(Stage).where(Stage.project_id == p))
            return sorted((st.title, st.status, st.position) for st in rows)

        def requests(p: uuid.UUID) -> list[tuple[Any, ...]]:
            rows = s.scalars(select(SignoffRequest).where(SignoffRequest.project_id == p))
            return sorted((r.status, r.channel, r.signer_name, r.decided_at) for r in rows)

        assert stage_view(new) == stage_view(old)
        assert requests(new) == requests(old)
        assert any(r[0] == "approved" for r in requests(new))
        old_settings = s.scalar(select(CommsSettings).where(CommsSettings.project_id == old))
        new_settings = s.scalar(select(CommsSettings).where(CommsSettings.project_id == new))
        assert old_settings
        assert new_settings
        assert (new_settings.timezone, new_settings.daily_cap) == ("Europe/Berlin", 7) == \
            (old_settings.timezone, old_settings.daily_cap)
        subs_old = {(x.recipient_key, x.category, x.subscribed): x.token
                    for x in s.scalars(select(Subscription).where(Subscription.project_id == old))}
        subs_new = {(x.recipient_key, x.category, x.subscribed): x.token
                    for x in s.scalars(select(Subscription).where(Subscription.project_id == new))}
        assert set(subs_new) == set(subs_old)
        assert subs_new
        assert not set(subs_new.values()) & set(subs_old.values())  # old unsubscribe links never reach the copy
        audit = s.scalars(select(AuditEvent.action).where(AuditEvent.project_id == new)).all()
        assert "backup.restored" in audit
        assert "restored" in (s.get_one(Project, new).name or "")


def _assert_ids_are_new(client: TestClient, old: uuid.UUID, new: uuid.UUID) -> None:
    rt = runtime_of(client)
    with rt.db.service_session() as s:
        old_ids = set(s.scalars(select(Artifact.id).where(Artifact.project_id == old)))
        new_ids = set(s.scalars(select(Artifact.id).where(Artifact.project_id == new)))
        assert old_ids
        assert new_ids
        assert not old_ids & new_ids
        for art in s.scalars(select(Artifact).where(Artifact.project_id == new, Artifact.parent_id.is_not(None))):
            assert art.parent_id in new_ids


def test_restore_over_the_same_project_needs_its_name(client: TestClient, world: World) -> None:
    rt = runtime_of(client)
    built = build_project(client, world, corpus=False)
    before_rows = row_counts(rt, world.project_a)
    made = run_backup(client, world)
    doc = built["docs"]["Test strategy.txt"]
    assert client.delete(f"/api/documents/{doc['id']}", params=pa(world), headers=world.h("lead")).status_code == 200
    params = {**pa(world), "backup_key": made["key"]}
    refused = client.post("/api/backups/restore", params=params, headers=world.h("owner"),
                          json={"target": "replace", "confirm": "not the name"})
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "confirm_required"
    done = client.post("/api/backups/restore", params=params, headers=world.h("owner"),
                       json={"target": "replace", "confirm": "A"})
    assert done.status_code == 200, done.text
    assert done.json()["project_id"] == str(world.project_a)
    after = row_counts(rt, world.project_a)
    assert after == before_rows
    got = client.get(f"/api/documents/{doc['id']}", params=pa(world), headers=world.h("member"))
    assert got.status_code == 200
    assert got.json()["sha256"] == doc["sha256"]
    download = client.get(f"/api/documents/{doc['id']}/download", params=pa(world), headers=world.h("member"))
    assert hashlib.sha256(download.content).hexdigest() == doc["sha256"]


def test_restore_needs_the_owner(client: TestClient, world: World) -> None:
    made = run_backup(client, world)
    response = client.post("/api/backups/restore", params={**pa(world), "backup_key": made["key"]},
                           headers=world.h("admin"), json={"target": "new"})
    assert response.status_code == 403


def test_rows_that_point_at_deleted_users_are_nulled_or_skipped(client: TestClient, world: World) -> None:
    from kap.core.models import ProjectMember, User

    rt = runtime_of(client)
    build_project(client, world, corpus=False)  # the lead uploaded the documents
    made = run_backup(client, world)
    with rt.db.service_transaction() as s:
        s.delete(s.get(User, world.users["lead"]))
    response = client.post("/api/backups/restore", params={**pa(world), "backup_key": made["key"]},
                           headers=world.h("owner"), json={"target": "new"})
    assert response.status_code == 200, response.text
    body = response.json()
    new = uuid.UUID(body["project_id"])
    assert body["skipped_rows"] == {"project_members": 1}
    with rt.db.service_session() as s:
        members = s.scalars(select(ProjectMember.user_id).where(ProjectMember.project_id == new)).all()
        uploaders = s.scalars(select(Artifact.uploaded_by).where(Artifact.project_id == new)).all()
    assert world.users["lead"] not in members
    assert world.users["owner"] in members
    assert uploaders
    assert all(u is None for u in uploaders)
