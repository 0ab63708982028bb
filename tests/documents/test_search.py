"""Search: ranked, scoped to the project inside the index, safe snippets, one reusable function."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from kap.core.deps import resolve_project
from kap.core.runtime import Runtime
from kap.core.security import Identity
from kap.documents.search import fts5_expression, query_terms, search_chunks
from tests.conftest import World
from tests.documents.conftest import CORPUS, ingest_corpus, upload


def _search(client: TestClient, world: World, q: str, **extra: object) -> dict[str, object]:
    response = client.get("/api/search", params={"project_id": str(world.project_a), "q": q, **extra},
                          headers=world.h("member"))
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_hits_are_ranked_with_deep_links(client: TestClient, world: World) -> None:
    docs = ingest_corpus(client, world)
    body = _search(client, world, "go-live September")
    hits = body["hits"]
    assert isinstance(hits, list)
    assert hits
    assert hits[0]["artifact_id"] == docs["SOW-2026-014 Northwind Workday.pdf"]["id"]
    assert hits[0]["page"] == 1
    assert hits[0]["name"] == "SOW-2026-014 Northwind Workday.pdf"
    assert hits[0]["link"] == f"/p/{world.project_a}/documents/{hits[0]['artifact_id']}#page=1"
    assert "<mark>" in hits[0]["snippet"]
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_all_terms_first_then_any(client: TestClient, world: World) -> None:
    ingest_corpus(client, world)
    strict = _search(client, world, "Kronos zebra", match="all")
    assert strict["hits"] == []
    assert strict["match"] == "all"
    auto = _search(client, world, "Kronos zebra")
    assert auto["match"] == "any"
    assert auto["hits"]


def test_a_hit_in_another_project_never_comes_back(client: TestClient, world: World) -> None:
    upload(client, world, "secret.txt", content=b"Project B codename is Bluebird.", project=world.project_b,
           who="b_member")
    assert _search(client, world, "Bluebird")["hits"] == []
    other = client.get("/api/search", params={"project_id": str(world.project_b), "q": "Bluebird"},
                       headers=world.h("b_member")).json()
    assert len(other["hits"]) == 1
    outsider = client.get("/api/search", params={"project_id": str(world.project_b), "q": "Bluebird"},
                          headers=world.h("outsider"))
    assert outsider.status_code == 404


def test_snippets_are_html_escaped(client: TestClient, world: World) -> None:
    upload(client, world, "x.txt", content=b"<script>alert('owned')</script> quarterly payroll review")
    hits = _search(client, world, "payroll")["hits"]
    assert isinstance(hits, list)
    snippet = hits[0]["snippet"]
    assert "<script" not in snippet
    assert "<mark>payroll</mark>" in snippet
    without_marks = snippet.replace("<mark>", "").replace("</mark>", "")
    assert "<" not in without_marks
    assert ">" not in without_marks


def test_query_syntax_cannot_break_out(client: TestClient, world: World) -> None:
    upload(client, world, CORPUS / "Test strategy.txt")
    for q in ['"', "proj:p123", "NOT OR AND", "a) OR (b", "*", "body : x", "NEAR(a b)", "'; drop table x; --"]:
        response = client.get("/api/search", params={"project_id": str(world.project_a), "q": q},
                              headers=world.h("member"))
        assert response.status_code in (200, 422), (q, response.text)
    empty = client.get("/api/search", params={"project_id": str(world.project_a), "q": "?!"},
                       headers=world.h("member"))
    assert empty.status_code == 422
    assert empty.json()["error"]["code"] == "empty_query"
    missing = client.get("/api/search", params={"project_id": str(world.project_a)}, headers=world.h("member"))
    assert missing.status_code == 422


def test_fts5_expression_is_phrases_of_plain_words() -> None:
    expression = fts5_expression(query_terms('86,500 "Dana Whitfield"'), "all")
    assert expression == 'body : ("86 500" AND "dana whitfield")'


def test_search_chunks_is_a_reusable_service_function(client: TestClient, world: World, runtime: Runtime) -> None:
    docs = ingest_corpus(client, world)
    identity = Identity(via="dev", user_id=world.users["member"])
    with runtime.db.app_session(identity.user_id) as session:
        ctx = resolve_project(session, identity, world.project_a)
        hits = search_chunks(ctx, "executive sponsor client", 5, match="any")
        assert hits
        assert hits[0].artifact_id.hex == docs["SOW-2026-014 Northwind Workday.pdf"]["id"].replace("-", "")
        assert "Dana Whitfield" in hits[0].text
        assert hits[0].page == 2
        scoped = search_chunks(ctx, "Kronos", 10, artifact_ids=[hits[0].artifact_id])
        assert scoped == []


@pytest.mark.postgres_only
def test_the_database_refuses_search_of_a_project_the_caller_cannot_see(client: TestClient, world: World,
                                                                        runtime: Runtime) -> None:
    upload(client, world, "secret.txt", content=b"Project B codename is Bluebird.", project=world.project_b,
           who="b_member")
    for who, expected in (("outsider", 0), ("member", 0), ("b_member", 1)):
        with runtime.db.app_session(world.users[who]) as session:
            rows = session.execute(text("SELECT count(*) FROM kap_search_chunks(:p, "
                                        "plainto_tsquery('simple', 'bluebird'), 10)"),
                                   {"p": world.project_b}).scalar_one()
        assert rows == expected, who


def test_service_work_can_search_a_project_it_names(client: TestClient, world: World, runtime: Runtime) -> None:
    from kap.core.deps import service_context

    upload(client, world, CORPUS / "Test strategy.txt")
    with runtime.db.service_session() as session:
        ctx = service_context(session, Identity(via="internal", user_id=None), world.project_a,
                              purpose="test", role="member")
        hits = search_chunks(ctx, "severity", 5)
        assert hits
        assert all("everity" in h.text for h in hits)


def test_a_broad_query_ranks_at_most_the_cap_of_its_matches(client: TestClient, world: World,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from kap.documents import search

    for n in range(5):
        upload(client, world, f"note-{n}.txt", content=f"Cutover rehearsal note {n}.".encode())

    def count(q: str) -> int:
        hits = _search(client, world, q)["hits"]
        assert isinstance(hits, list)
        return len(hits)

    assert count("rehearsal") == 5
    monkeypatch.setattr(search, "SEARCH_CAP", 2)
    assert count("rehearsal") == 2
    assert count("rehearsal note 3") == 1
