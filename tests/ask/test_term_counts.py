"""The project's term counts (ask_0003, PostgreSQL) match the chunks after every kind of write.

`ask_term_counts` is kept by statement triggers on `artifact_chunks`; each test compares its sums
with a live count over the chunks, and the frequencies Ask weighs terms by with live capped counts.
"""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from kap.ask import retrieval
from kap.ask.query import parse_question
from kap.core.db import Database
from kap.core.deps import resolve_project
from kap.core.runtime import Runtime
from kap.core.security import Identity
from tests.ask.conftest import CORPUS, ask, ingest_corpus, upload
from tests.conftest import World

pytestmark = pytest.mark.postgres_only

KEPT = "SELECT lexeme, sum(chunks) FROM ask_term_counts WHERE project_id = :p GROUP BY 1 HAVING sum(chunks) <> 0"
LIVE = ("SELECT l.lexeme, count(*) FROM artifact_chunks c, unnest(tsvector_to_array(c.tsv_en)) AS l(lexeme) "
        "WHERE c.project_id = :p GROUP BY 1")


def kept(db: Database, project: uuid.UUID) -> dict[str, int]:
    with db.service_session() as s:
        return {lexeme: int(n) for lexeme, n in s.execute(text(KEPT), {"p": project}).all()}


def live(db: Database, project: uuid.UUID) -> dict[str, int]:
    with db.service_session() as s:
        return {lexeme: int(n) for lexeme, n in s.execute(text(LIVE), {"p": project}).all()}


def params(world: World, project: uuid.UUID | None = None) -> dict[str, str]:
    return {"project_id": str(project or world.project_a)}


def test_counts_follow_ingest_reingest_and_delete(ask_client: TestClient, world: World, db: Database) -> None:
    assert kept(db, world.project_a) == {}
    docs = ingest_corpus(ask_client, world)
    counted = live(db, world.project_a)
    assert counted["payrol"] >= 2
    assert kept(db, world.project_a) == counted

    doc = docs["RAID log.xlsx"]
    again = ask_client.post("/api/reingest-stored", params={**params(world), "artifact_id": doc["id"]},
                            headers=world.h("lead"))
    assert again.status_code == 200, again.text
    assert kept(db, world.project_a) == live(db, world.project_a) == counted

    gone = ask_client.delete(f"/api/documents/{docs['Test strategy.txt']['id']}", params=params(world),
                             headers=world.h("lead"))
    assert gone.status_code == 200, gone.text
    after = live(db, world.project_a)
    assert after != counted
    assert kept(db, world.project_a) == after


def test_counts_follow_a_changed_text_and_a_deleted_project(ask_client: TestClient, world: World,
                                                            db: Database) -> None:
    upload(ask_client, world, "a.txt", b"Bluebird payroll cutover.", project=world.project_b, who="b_member")
    upload(ask_client, world, "b.txt", b"Kestrel payroll run.")
    with db.service_transaction() as s:
        s.execute(text("UPDATE artifact_chunks SET text = 'Osprey ledger' WHERE project_id = :p"),
                  {"p": world.project_b})
        s.execute(text("UPDATE artifact_chunks SET page = 3 WHERE project_id = :p"), {"p": world.project_a})
    assert kept(db, world.project_b) == live(db, world.project_b) == {"osprey": 1, "ledger": 1}
    assert kept(db, world.project_a) == live(db, world.project_a)
    with db.service_transaction() as s:
        s.execute(text("DELETE FROM projects WHERE id = :p"), {"p": world.project_b})
    assert kept(db, world.project_b) == {}
    assert kept(db, world.project_a) == live(db, world.project_a)


def test_counts_follow_a_restore_over_the_project_and_into_a_new_one(ask_client: TestClient, world: World,
                                                                    db: Database) -> None:
    docs = {p.name: upload(ask_client, world, p.name, p.read_bytes())
            for p in (CORPUS / "Test strategy.txt", CORPUS / "Cutover notes.md")}
    counted = live(db, world.project_a)
    made = ask_client.post("/api/backups/run", params=params(world), headers=world.h("admin"))
    assert made.status_code == 200, made.text
    key = made.json()["key"]
    ask_client.delete(f"/api/documents/{docs['Test strategy.txt']['id']}", params=params(world),
                      headers=world.h("lead"))
    restore = {**params(world), "backup_key": key}
    replaced = ask_client.post("/api/backups/restore", params=restore, headers=world.h("owner"),
                               json={"target": "replace", "confirm": "A"})
    assert replaced.status_code == 200, replaced.text
    assert kept(db, world.project_a) == live(db, world.project_a) == counted
    copied = ask_client.post("/api/backups/restore", params=restore, headers=world.h("owner"),
                             json={"target": "new"})
    assert copied.status_code == 200, copied.text
    assert kept(db, uuid.UUID(copied.json()["project_id"])) == counted


def test_the_hourly_job_folds_the_counts_into_one_row_a_word(ask_client: TestClient, world: World,
                                                             db: Database) -> None:
    from kap.ask.jobs import compact_term_counts

    doc = upload(ask_client, world, "a.txt", b"Kestrel payroll run.")
    for _ in range(2):
        ask_client.post("/api/reingest-stored", params={**params(world), "artifact_id": doc["id"]},
                        headers=world.h("lead"))
    upload(ask_client, world, "b.txt", b"Osprey ledger.", project=world.project_b, who="b_member")

    def rows(project: uuid.UUID) -> int:
        with db.service_session() as s:
            return int(s.scalar(text("SELECT count(*) FROM ask_term_counts WHERE project_id = :p"), {"p": project}))

    assert rows(world.project_a) > 3
    compact_term_counts.call_local()
    assert rows(world.project_a) == 3
    assert rows(world.project_b) == 2
    assert kept(db, world.project_a) == live(db, world.project_a) == {"kestrel": 1, "payrol": 1, "run": 1}


def _frequencies(runtime: Runtime, world: World, question: str, cap: int) -> retrieval.Frequencies:
    identity = Identity(via="dev", user_id=world.users["member"])
    saved = retrieval.COUNT_CAP
    retrieval.COUNT_CAP = cap
    try:
        with runtime.db.app_session(identity.user_id) as session:
            return retrieval.frequencies(resolve_project(session, identity, world.project_a),
                                         parse_question(question).terms)
    finally:
        retrieval.COUNT_CAP = saved


def _live_frequencies(runtime: Runtime, world: World, question: str, cap: int) -> dict[str, int]:
    counts = {}
    with runtime.db.app_session(world.users["member"]) as session:
        for term in parse_question(question).terms:
            words = (term.words[0], *term.alts) if term.kind == "word" else (term.text,)
            function = "plainto_tsquery" if term.kind == "word" else "phraseto_tsquery"
            query = " || ".join(f"{function}('english', :w{j})" for j in range(len(words)))
            counts[term.text] = session.scalar(text(f"SELECT kap_count_chunks(:p, {query}, :cap)"),
                                               {"p": world.project_a, "cap": cap,
                                                **{f"w{j}": w for j, w in enumerate(words)}})
    return counts


QUESTIONS = ("Who is the executive sponsor?", "When is the payroll cutover?", "What does \"parallel run\" cost?",
             "How many hours of data-migration testing?", "Which kestrel osprey?")


@pytest.mark.parametrize("cap", [1000, 3])
def test_frequencies_equal_live_capped_counts(ask_client: TestClient, world: World, runtime: Runtime,
                                              cap: int) -> None:
    ingest_corpus(ask_client, world)
    for question in QUESTIONS:
        freq = _frequencies(runtime, world, question, cap)
        assert {t.text: n for t, n in freq.df.items()} == _live_frequencies(runtime, world, question, cap), question
        assert freq.total > 0


def test_a_word_the_counts_call_common_is_not_counted_in_the_index(ask_client: TestClient, world: World,
                                                                   runtime: Runtime, db: Database) -> None:
    upload(ask_client, world, "a.txt", b"Kestrel payroll run.")
    with db.service_transaction() as s:
        s.execute(text("INSERT INTO ask_term_counts VALUES (:p, 'osprey', 5000)"), {"p": world.project_a})
    freq = _frequencies(runtime, world, "osprey kestrel", 1000)
    assert {t.text: n for t, n in freq.df.items()} == {"osprey": 1000, "kestrel": 1}


def test_the_counts_of_a_project_the_caller_cannot_see_are_not_read(ask_client: TestClient, world: World,
                                                                    runtime: Runtime) -> None:
    upload(ask_client, world, "secret.txt", b"Project B codename is Bluebird.", project=world.project_b,
           who="b_member")
    for who, expected in (("outsider", 0), ("member", 0), ("b_member", 1)):
        with runtime.db.app_session(world.users[who]) as session:
            held = session.scalar(text("SELECT kap_count_term(:p, ARRAY['bluebird'], "
                                       "plainto_tsquery('english', 'bluebird'), 10)"), {"p": world.project_b})
        assert held == expected, who
    assert ask(ask_client, world, "What is the codename?", who="b_member", project=world.project_b)["found"]


def test_the_migration_counts_the_chunks_already_there_and_downgrades(ask_client: TestClient, world: World,
                                                                      db: Database, database_url: str) -> None:
    from alembic import command

    from kap.core.migrate import alembic_config, upgrade

    ingest_corpus(ask_client, world)
    counted = live(db, world.project_a)
    config = alembic_config(database_url)
    try:
        command.downgrade(config, "ask_0002")
        with db.service_session() as s:
            assert s.scalar(text("SELECT to_regclass('ask_term_counts')")) is None
            assert s.scalar(text("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'ask_term_counts%'")) == 0
    finally:
        upgrade(database_url)
    assert kept(db, world.project_a) == counted
    with db.service_session() as s:
        rows = s.scalar(text("SELECT count(*) FROM ask_term_counts WHERE project_id = :p"), {"p": world.project_a})
    assert rows == len(counted)
