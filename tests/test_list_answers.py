"""Lists answer from plain row values serialised once: the bytes are the model's JSON, unchanged."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from kap.core.db import Database, IdText, UTCDateTime
from kap.core.routes import json_answer
from kap.documents.models import Artifact
from kap.documents.schemas import ArtifactList, ArtifactRead, listed_views
from kap.projects.schemas import ProjectList, ProjectRead
from tests.conftest import World


def _artifact(world: World, n: int, **extra: object) -> Artifact:
    aid = uuid.uuid4()
    fields: dict[str, object] = dict(
        id=aid, org_id=world.org1, project_id=world.project_a, name=f"Relevé {n:02d} \"ÿ\" </script>.pdf",
        media_type="application/pdf", kind="pdf", size=10**12 + n, sha256=aid.hex * 2, storage_key=f"t/{aid.hex}",
        status="ready", page_count=n, chunk_count=n, ocr_pages=[1, 3], version=1, shareable=False, meta={},
        created_at=datetime(2026, 12, 3, 1, 2, 3, tzinfo=UTC) + timedelta(seconds=n),
        updated_at=datetime(2026, 12, 3, 1, 2, 3, 4, tzinfo=UTC))
    fields.update(extra)
    return Artifact(**fields)


def test_documents_list_is_the_models_json_of_its_rows(client: TestClient, world: World, db: Database) -> None:
    with db.service_transaction() as s:
        parent = _artifact(world, 1, uploaded_by=world.users["lead"])
        s.add(parent)
        s.flush()
        s.add(_artifact(world, 2, parent_id=parent.id, status="needs_ocr", status_reason="scanned\npages",
                        ocr_pages=[], uploaded_by=None))
        s.add(_artifact(world, 3, status="failed", status_reason=None, ocr_pages=[]))
    response = client.get("/api/documents", params={"project_id": str(world.project_a), "limit": 2, "offset": 1},
                          headers=world.h("member"))
    assert response.status_code == 200, response.text
    with db.service_transaction() as s:
        rows = s.scalars(select(Artifact).where(Artifact.project_id == world.project_a)
                         .order_by(Artifact.created_at.desc(), Artifact.id)).all()
        model = ArtifactList(total=3, limit=2, offset=1, documents=[ArtifactRead.of(a) for a in rows[1:3]])
    assert response.content == model.model_dump_json().encode()
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize(("params", "total", "shown"), [
    ({"limit": 2}, 5, 2),  # a full page: the rest is counted
    ({"limit": 2, "offset": 4}, 5, 1),  # the last page: offset and rows
    ({"limit": 5}, 5, 5),  # full to the brim
    ({"limit": 10}, 5, 5),
    ({"limit": 2, "offset": 9}, 5, 0),  # past the end: counted on its own
    ({"limit": 2, "status": "failed"}, 2, 2),
    ({"limit": 1, "status": "failed", "offset": 1}, 2, 1),
    ({"limit": 3, "status": "needs_ocr"}, 0, 0),
])
def test_documents_list_total_is_every_match_whatever_the_page(client: TestClient, world: World, db: Database,
                                                               params: dict[str, Any], total: int, shown: int) -> None:
    with db.service_transaction() as s:
        for n in range(5):
            s.add(_artifact(world, n, status="failed" if n < 2 else "ready", ocr_pages=[]))
    response = client.get("/api/documents", params={"project_id": str(world.project_a), **params},
                          headers=world.h("member"))
    assert response.status_code == 200, response.text
    assert (response.json()["total"], len(response.json()["documents"])) == (total, shown)


def test_listed_views_serialise_as_the_model_does() -> None:
    project = uuid.uuid4()
    moment = datetime(2026, 12, 3, 1, 2, 3, 4, tzinfo=UTC)
    rows = [(uuid.uuid4(), None, "Ünïcode", "application/pdf", "pdf", 10**12, "ab" * 32, "ready", None, 3, 3,
             [1, 2], 1, uuid.uuid4(), moment, moment.replace(microsecond=0), 2),
            (uuid.uuid4(), uuid.uuid4(), "x", "text/plain", "txt", 0, "cd" * 32, "failed", "why", 0, 0, None, 2,
             None, moment, moment, 2)]
    body = {"ok": True, "total": 2, "limit": 50, "offset": 0, "documents": listed_views(project, rows)}
    expected = ArtifactList(total=2, limit=50, offset=0,
                            documents=ArtifactRead.of_rows(project, rows)).model_dump_json().encode()
    assert json_answer(body).body == expected


def test_projects_list_is_the_models_json(client: TestClient, world: World) -> None:
    response = client.get("/api/projects", params={"include_archived": "true"}, headers=world.h("org_owner"))
    assert response.status_code == 200, response.text
    projects = ProjectList.model_validate_json(response.content).projects
    assert [p.name for p in projects] == ["A", "B"]
    assert response.content == ProjectList(projects=[ProjectRead.model_validate(p.model_dump())
                                                      for p in projects]).model_dump_json().encode()
    assert b'"role":"owner","created_at":"' in response.content
    assert b'"archived_at":null' in response.content


def _reader(kind: Any, dialect: Any) -> Any:
    """The function a column of this type reads its values with on this engine."""
    column: Any = kind.dialect_impl(dialect)
    return column.result_processor(dialect, None)


@pytest.mark.parametrize("stored", ["2026-12-03 01:02:03.000004", "2026-12-03 01:02:03", "2026-12-03T01:02:03",
                                    "2026-12-03 03:02:03+02:00", None])
def test_sqlite_timestamps_read_as_utc(stored: str | None) -> None:
    dialect = sqlite.dialect()
    column: Any = UTCDateTime().dialect_impl(dialect)
    parse = column.impl_instance.result_processor(dialect, None)
    read = _reader(UTCDateTime(), dialect)(stored)
    assert read == column.process_result_value(parse(stored), dialect)
    if stored is not None:
        assert read.tzinfo is UTC
        assert read == datetime(2026, 12, 3, 1, 2, 3, read.microsecond, tzinfo=UTC)


def test_postgresql_timestamps_read_as_utc() -> None:
    read = _reader(UTCDateTime(), postgresql.dialect())
    away = datetime(2026, 12, 3, 3, 2, 3, tzinfo=UTC).astimezone(ZoneInfo("Europe/Athens"))
    assert read(away) == away
    assert read(away).tzinfo is UTC
    assert read(datetime(2026, 12, 3, 1, 2, 3)).tzinfo is UTC
    assert read(None) is None


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()], ids=["sqlite", "postgresql"])
def test_ids_read_as_their_json_text(dialect: Any) -> None:
    value = uuid.uuid4()
    stored = value.hex if dialect.name == "sqlite" else value
    read = _reader(IdText(), dialect)
    assert read(stored) == str(value)
    assert read(None) is None
    if dialect.name == "sqlite":
        assert read(str(value).upper()) == str(value)
