"""SQLite: reading or replacing one document's chunks walks that document's rows, not its project's."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kap.core.db import Database
from tests.conftest import TEST_DB, World
from tests.documents.conftest import upload
from tests.documents.test_fts_ranges import _add_chunks

pytestmark = pytest.mark.skipif(TEST_DB != "sqlite", reason="the planner choice under test is SQLite's")


def _steps(db: Database, world: World, artifact_id: str, action: str) -> int:
    """SQLite VM steps (in hundreds) to read (`detail`) or clear (`clear`) one document's chunks."""
    from kap.core.deps import resolve_project
    from kap.core.security import Identity
    from kap.documents import ingest, service

    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    with db.app_session(world.users["member"]) as session:
        ctx = resolve_project(session, Identity(via="dev", user_id=world.users["member"]), world.project_a)
        artifact = service.get_artifact(ctx, uuid.UUID(artifact_id))
        raw: Any = session.connection().connection.driver_connection
        raw.set_progress_handler(count, 100)
        try:
            if action == "detail":
                service.document_detail(ctx, artifact.id)
            else:
                ingest.clear_chunks(session, artifact)
        finally:
            raw.set_progress_handler(None, 0)
        session.rollback()
    return steps


def test_one_documents_chunks_cost_the_same_in_a_project_of_thousands(client: TestClient, world: World,
                                                                       db: Database) -> None:
    response = upload(client, world, "plan.txt", content=b"Cutover plan.\n\nRehearsal on 3 March.")
    assert response.status_code == 200, response.text
    document = response.json()["document"]["id"]
    small = {action: _steps(db, world, document, action) for action in ("detail", "clear")}
    _add_chunks(db, world, world.project_a, 5000)  # another document of the same project
    big = {action: _steps(db, world, document, action) for action in ("detail", "clear")}
    for action in small:
        assert big[action] <= small[action] + 2, (action, small, big)
