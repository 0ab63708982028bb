"""SQLite: each project is one contiguous rowid range of the FTS5 indexes, and that range scopes a query."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import text

from kap.core.db import Database
from kap.core.migrate import alembic_config
from kap.documents.search import FTS_RANGE, rebuild_sqlite_index
from tests.conftest import TEST_DB, World
from tests.documents.conftest import upload as post_file

pytestmark = pytest.mark.skipif(TEST_DB != "sqlite", reason="SQLite FTS5 only")
SAME = b"Cutover rehearsal owner is Priya. The payroll parallel run starts in March."


def upload(client: TestClient, world: World, name: str, **extra: Any) -> dict[str, Any]:
    response = post_file(client, world, name, **extra)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()["document"]
    return document


def _search(client: TestClient, world: World, project: uuid.UUID, who: str, q: str) -> list[str]:
    response = client.get("/api/search", params={"project_id": str(project), "q": q}, headers=world.h(who))
    assert response.status_code == 200, response.text
    return [h["artifact_id"] for h in response.json()["hits"]]


def _keys(db: Database) -> dict[str, tuple[str, int]]:
    """Chunk id -> (project hex, FTS rowid) of the exact index."""
    with db.service_transaction() as s:
        rows = s.execute(text("SELECT f.chunk_id, c.project_id, f.rowid FROM artifact_chunks_fts f "
                              "JOIN artifact_chunks c ON c.id = f.chunk_id")).all()
    return {str(r[0]): (str(r[1]), int(r[2])) for r in rows}


def _stem_count(db: Database, project: uuid.UUID, word: str) -> int:
    with db.service_transaction() as s:
        return int(s.execute(text(f"SELECT count(*) FROM artifact_chunks_stem WHERE artifact_chunks_stem "
                                  f"MATCH :q AND {FTS_RANGE}"), {"q": word, "project": project.hex}).scalar_one())


def test_same_words_in_two_projects_are_found_only_in_the_asking_one(client: TestClient, world: World,
                                                                    db: Database) -> None:
    a = upload(client, world, "a.txt", content=SAME)
    b = upload(client, world, "b.txt", content=SAME, project=world.project_b, who="b_member")
    assert _search(client, world, world.project_a, "member", "rehearsal Priya") == [a["id"]]
    assert _search(client, world, world.project_b, "b_member", "rehearsal Priya") == [b["id"]]
    ask = client.post("/api/ask", params={"project_id": str(world.project_a)}, headers=world.h("member"),
                      json={"question": "Who owns the cutover rehearsal?"})
    assert ask.status_code == 200, ask.text
    assert {c["artifact_id"] for c in ask.json()["citations"]} == {a["id"]}
    keys = _keys(db)
    with db.service_transaction() as s:
        numbers: dict[str, int] = dict(s.execute(text("SELECT project_id, num FROM fts_projects")).tuples().all())
    assert numbers[world.project_a.hex] != numbers[world.project_b.hex]
    for project, key in keys.values():
        assert key >> 32 == numbers[project]
    assert _stem_count(db, world.project_a, "rehearsal") == _stem_count(db, world.project_b, "rehearsal") == 1


def test_rebuild_gives_the_keys_the_triggers_gave(client: TestClient, world: World, db: Database) -> None:
    upload(client, world, "a.txt", content=SAME)
    upload(client, world, "b.txt", content=SAME, project=world.project_b, who="b_member")
    before = _keys(db)
    with db.service_transaction() as s:
        assert rebuild_sqlite_index(s) == len(before)
    assert _keys(db) == before
    assert _stem_count(db, world.project_a, "payroll") == 1
    assert len(_search(client, world, world.project_b, "b_member", "payroll March")) == 1


def test_a_chunk_moved_to_another_project_is_found_there_only(client: TestClient, world: World,
                                                              db: Database) -> None:
    doc = upload(client, world, "moved.txt", content=b"Codename Bluebird for the data conversion.")
    with db.service_transaction() as s:
        s.execute(text("UPDATE artifact_chunks SET project_id = :b WHERE artifact_id = :a"),
                  {"b": world.project_b.hex, "a": uuid.UUID(doc["id"]).hex})
    assert _stem_count(db, world.project_a, "bluebird") == 0
    assert _stem_count(db, world.project_b, "bluebird") == 1
    with db.service_transaction() as s:
        hits = s.execute(text(f"SELECT count(*) FROM artifact_chunks_fts WHERE artifact_chunks_fts MATCH 'bluebird' "
                              f"AND {FTS_RANGE}"), {"project": world.project_b.hex}).scalar_one()
        s.execute(text("DELETE FROM artifact_chunks WHERE artifact_id = :a"), {"a": uuid.UUID(doc["id"]).hex})
    assert hits == 1
    assert _stem_count(db, world.project_b, "bluebird") == 0


def test_the_migration_keys_existing_chunks_and_goes_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kap.sqlite'}"
    config = alembic_config(url)
    command.upgrade(config, "documents@documents_0003")
    command.upgrade(config, "heads")
    command.downgrade(config, "documents@documents_0003")
    con = sqlite3.connect(tmp_path / "kap.sqlite")
    projects = [uuid.uuid4().hex, uuid.uuid4().hex]
    org, artifact = uuid.uuid4().hex, uuid.uuid4().hex
    with con:
        con.execute("INSERT INTO orgs (id, name, created_at) VALUES (?, 'Org', '2026-12-02')", (org,))
        for n, project in enumerate(projects):
            con.execute("INSERT INTO projects (id, org_id, name, created_at, updated_at) "
                        "VALUES (?, ?, 'P', ?, ?)", (project, org, f"2026-12-0{n + 1}", "2026-12-02"))
        con.execute("INSERT INTO artifacts (id, org_id, project_id, name, media_type, kind, size, sha256, storage_key, "
                    "status, page_count, chunk_count, ocr_pages, version, shareable, meta, created_at, updated_at) "
                    "VALUES (?, ?, ?, 'a.txt', 'text/plain', 'file', 1, '', '', 'ready', 1, 2, '[]', 1, 0, '{}', "
                    "'2026-12-02', '2026-12-02')", (artifact, org, projects[1]))
        for seq in range(2):
            con.execute("INSERT INTO artifact_chunks (id, org_id, project_id, artifact_id, seq, locator, text, "
                        "created_at) VALUES (?, ?, ?, ?, ?, '', ?, '2026-12-02')",
                        (uuid.uuid4().hex, org, projects[1], artifact, seq, f"Rehearsal owner {seq}"))
    con.close()
    command.upgrade(config, "heads")
    con = sqlite3.connect(tmp_path / "kap.sqlite")
    for table, q in (("artifact_chunks_fts", "rehearsal"), ("artifact_chunks_stem", "rehearsal")):
        counts = [con.execute(f"SELECT count(*) FROM {table} WHERE {table} MATCH :q AND "
                              + FTS_RANGE, {"q": q, "project": p}).fetchone()[0] for p in projects]
        assert counts == [0, 2], table
    assert [r[0] for r in con.execute("SELECT project_id FROM fts_projects ORDER BY num")] == projects
    con.close()
    command.downgrade(config, "documents@documents_0003")
    con = sqlite3.connect(tmp_path / "kap.sqlite")
    found = con.execute("SELECT count(*) FROM artifact_chunks_stem WHERE artifact_chunks_stem MATCH ?",
                        (f'proj : "p{projects[1]}" AND body : "rehearsal"',)).fetchone()[0]
    assert found == 2
    con.close()


def _add_chunks(db: Database, world: World, project: uuid.UUID, count: int) -> None:
    """`count` chunks holding "rehearsal" in one ready document of the project (straight to the tables)."""
    from kap.documents.models import Artifact, ArtifactChunk

    org = world.org1 if project in (world.project_a, world.project_b) else world.org2
    artifact = uuid.uuid4()
    with db.service_transaction() as s:
        s.add(Artifact(id=artifact, org_id=org, project_id=project, name=f"notes-{artifact.hex[:6]}.txt",
                       media_type="text/plain", kind="txt", size=1, sha256=artifact.hex * 2,
                       storage_key=f"t/{artifact.hex}", status="ready", page_count=1, chunk_count=count,
                       ocr_pages=[], version=1, shareable=False, meta={}))
        s.flush()
        s.add_all(ArtifactChunk(id=uuid.uuid4(), org_id=org, project_id=project, artifact_id=artifact, seq=n,
                                page=1, locator="", text=f"Cutover rehearsal note {n}.") for n in range(count))


def _search_steps(db: Database, world: World, project: uuid.UUID, who: str) -> tuple[int, int]:
    """How many hits a search of the project gives, and how many SQLite VM steps (in thousands) it took."""
    from kap.core.deps import resolve_project
    from kap.core.security import Identity
    from kap.documents.search import search_chunks

    identity = Identity(via="dev", user_id=world.users[who])
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    with db.app_session(identity.user_id) as session:
        ctx = resolve_project(session, identity, project)
        raw: Any = session.connection().connection.driver_connection
        raw.set_progress_handler(count, 1000)
        try:
            hits = search_chunks(ctx, "rehearsal", 10)
        finally:
            raw.set_progress_handler(None, 0)
        session.rollback()
    return len(hits), steps


def test_a_search_walks_its_own_project_however_big_an_earlier_one(db: Database, world: World) -> None:
    """A project with fewer matches than the cap is read from its own range: the work of its search does
    not grow with the matches of a project numbered before it."""
    _add_chunks(db, world, world.project_b, 20)  # project B is numbered first: its range comes before A's
    _add_chunks(db, world, world.project_a, 15)
    hits, small = _search_steps(db, world, world.project_a, "member")
    _add_chunks(db, world, world.project_b, 4000)
    assert _search_steps(db, world, world.project_a, "member")[0] == hits == 10
    big = _search_steps(db, world, world.project_a, "member")[1]
    assert big <= small + 2, (small, big)
