"""Within a tier, the project's chunks are ranked by the project's own term statistics."""

from __future__ import annotations

from fastapi.testclient import TestClient

from kap.ask import retrieval
from kap.ask.query import parse_question
from kap.core.deps import resolve_project
from kap.core.runtime import Runtime
from kap.core.security import Identity
from tests.ask.conftest import upload
from tests.conftest import World


def _ranked(runtime: Runtime, world: World, question: str) -> list[str]:
    identity = Identity(via="dev", user_id=world.users["member"])
    with runtime.db.app_session(identity.user_id) as session:
        ctx = resolve_project(session, identity, world.project_a)
        parsed = parse_question(question)
        found, _ = retrieval.text_hits(ctx, parsed, retrieval.frequencies(ctx, parsed.terms))
        return [c.name for c in found]


def test_another_orgs_documents_do_not_change_the_ranking(ask_client: TestClient, runtime: Runtime,
                                                          world: World) -> None:
    # In this project "zebra" is common and "quokka" rare, so the chunk saying "quokka" most ranks first.
    upload(ask_client, world, "Zebra count.txt", b"Zebra zebra zebra quokka.")
    upload(ask_client, world, "Quokka count.txt", b"Zebra quokka quokka quokka.")
    for n in range(4):
        upload(ask_client, world, f"Zebra note {n}.txt", f"Zebra sighting number {n}.".encode())
    before = _ranked(runtime, world, "zebra quokka")
    if not runtime.db.is_postgres:  # BM25 weighs the rarer term (PostgreSQL's ts_rank weighs none)
        assert before[:2] == ["Quokka count.txt", "Zebra count.txt"]
    # Another org's documents say "quokka" everywhere: in the whole index it is the common word.
    for n in range(10):
        upload(ask_client, world, f"Quokka {n}.txt", f"Quokka report {n}.".encode(), project=world.project_c,
               who="outsider")
    assert _ranked(runtime, world, "zebra quokka") == before
