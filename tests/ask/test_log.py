"""The question log: every question recorded (who, when, which chunks); owners read it."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from kap.core.db import Database
from kap.core.models import AuditEvent
from tests.ask.conftest import ask, ingest_corpus
from tests.conftest import World


def _log(client: TestClient, world: World, who: str = "owner", **params: object) -> object:
    return client.get("/api/ask/log", params={"project_id": str(world.project_a), **params}, headers=world.h(who))


def test_each_question_is_logged_with_who_when_and_chunks(ask_client: TestClient, world: World,
                                                          db: Database) -> None:
    ingest_corpus(ask_client, world)
    first = ask(ask_client, world, "What is the planned go-live date?", who="member")
    ask(ask_client, world, "What is the Bluebird codename?", who="lead")
    response = _log(ask_client, world)
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["total"] == 2
    newest, oldest = body["items"]
    assert oldest["id"] == first["question_id"]
    assert oldest["user_id"] == str(world.users["member"])
    assert oldest["question"] == "What is the planned go-live date?"
    assert oldest["found"] is True
    assert oldest["cited_chunk_ids"] == [c["chunk_id"] for c in first["citations"]]
    assert set(oldest["cited_chunk_ids"]) <= set(oldest["chunk_ids"])
    assert newest["user_id"] == str(world.users["lead"])
    assert newest["found"] is False
    assert "answer" not in newest
    with db.service_session() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.project_id == world.project_a,
                                                    AuditEvent.action == "ask.asked")).all()
    assert len(events) == 2
    assert all("question" not in e.details for e in events)


def test_only_owners_read_the_log(ask_client: TestClient, world: World) -> None:
    ask(ask_client, world, "anything at all?")
    assert _log(ask_client, world, "admin").status_code == 403  # type: ignore[attr-defined]
    assert _log(ask_client, world, "member").status_code == 403  # type: ignore[attr-defined]
    assert _log(ask_client, world, "owner").status_code == 200  # type: ignore[attr-defined]
    assert _log(ask_client, world, "org_owner").status_code == 200  # type: ignore[attr-defined]


def test_the_log_of_another_project_is_not_reachable(ask_client: TestClient, world: World) -> None:
    ask(ask_client, world, "anything at all?", who="b_member", project=world.project_b)
    mine = _log(ask_client, world).json()  # type: ignore[attr-defined]
    assert mine["total"] == 0
    other = ask_client.get("/api/ask/log", params={"project_id": str(world.project_b)}, headers=world.h("owner"))
    assert other.status_code == 404
