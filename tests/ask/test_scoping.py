"""Two orgs with look-alike documents: answers and citations never cross projects."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from sqlalchemy import select

from kap.ask.models import AskQuestion
from kap.core.db import Database
from kap.documents.models import ArtifactChunk
from tests.ask.conftest import ask, upload
from tests.conftest import World

CONTRACT = "Contract summary.txt"
FACTS = {
    "a": ("The legacy payroll contract with ADP ends August 31, 2026. The fixed fee is $1,240,000. "
          "Risk R-07 is owned by Dana Whitfield."),
    "c": ("The legacy payroll contract with ADP ends March 15, 2027. The fixed fee is $980,000. "
          "Risk R-07 is owned by Omar Haddad. Project codename is Bluebird."),
}
QUESTIONS = [("When does the ADP contract end?", "August 31, 2026", "March 15, 2027"),
             ("What is the fixed fee?", "1,240,000", "980,000"),
             ("Who owns risk R-07?", "Dana Whitfield", "Omar Haddad")]


def _seed(client: TestClient, world: World) -> dict[str, str]:
    a = upload(client, world, CONTRACT, FACTS["a"].encode())
    c = upload(client, world, CONTRACT, FACTS["c"].encode(), project=world.project_c, who="outsider")
    b = upload(client, world, CONTRACT, b"The contract with ADP ends in 2030.", project=world.project_b,
               who="b_member")
    return {"a": a["id"], "b": b["id"], "c": c["id"]}


def _project_of_chunks(db: Database, chunk_ids: list[str]) -> set[uuid.UUID]:
    with db.service_session() as s:
        ids = [uuid.UUID(c) for c in chunk_ids]
        return set(s.scalars(select(ArtifactChunk.project_id).where(ArtifactChunk.id.in_(ids))).all())


def test_look_alike_documents_in_two_orgs_never_cross(ask_client: TestClient, world: World, db: Database) -> None:
    docs = _seed(ask_client, world)
    for question, mine, theirs in QUESTIONS:
        in_a = ask(ask_client, world, question)
        in_c = ask(ask_client, world, question, who="outsider", project=world.project_c)
        assert mine in in_a["answer"], in_a
        assert theirs not in in_a["answer"], in_a
        assert theirs in in_c["answer"], in_c
        assert mine not in in_c["answer"], in_c
        assert {c["artifact_id"] for c in in_a["citations"]} == {docs["a"]}
        assert {c["artifact_id"] for c in in_c["citations"]} == {docs["c"]}
        assert all(theirs not in c["quote"] for c in in_a["citations"])


def test_a_fact_of_another_org_is_not_found(ask_client: TestClient, world: World) -> None:
    _seed(ask_client, world)
    body = ask(ask_client, world, "What is the project codename?")
    assert body["found"] is False
    assert "Bluebird" not in str(body)
    assert body["answer"] == "I could not find this in this project's documents."
    there = ask(ask_client, world, "What is the project codename?", who="outsider", project=world.project_c)
    assert there["found"]
    assert "Bluebird" in there["answer"]


def test_every_logged_chunk_belongs_to_the_asking_project(ask_client: TestClient, world: World,
                                                          db: Database) -> None:
    _seed(ask_client, world)
    for question, _, _ in QUESTIONS:
        ask(ask_client, world, question)
        ask(ask_client, world, question, who="outsider", project=world.project_c)
        ask(ask_client, world, question, who="b_member", project=world.project_b)
    with db.service_session() as s:
        rows = s.scalars(select(AskQuestion).where(
            AskQuestion.project_id.in_([world.project_a, world.project_b, world.project_c]))).all()
    assert len(rows) == 3 * len(QUESTIONS)
    assert all(row.chunk_ids for row in rows if row.project_id != world.project_b)
    for row in rows:
        assert _project_of_chunks(db, row.chunk_ids) <= {row.project_id}


def test_other_tenants_cannot_ask_in_a_project(ask_client: TestClient, world: World) -> None:
    _seed(ask_client, world)
    for who in ("outsider", "b_member"):
        response = ask_client.post("/api/ask", params={"project_id": str(world.project_a)}, headers=world.h(who),
                                   json={"question": "When does the ADP contract end?"})
        assert response.status_code == 404
        assert "August" not in response.text
        assert response.json()["error"]["message"] == "project not found"
