"""Optional dense vectors: an OpenAI-compatible /v1/embeddings peer on loopback, and the packaged local model."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from kap.ask.embeddings import LocalEmbedder, local_installed, unpack
from kap.core.db import Database
from kap.documents.models import ArtifactChunk
from tests.ask.conftest import EmbeddingsServer, ask, ingest_corpus, upload
from tests.conftest import World


def _tags(db: Database, project: uuid.UUID) -> list[tuple[str | None, int]]:
    with db.service_session() as s:
        rows = s.execute(select(ArtifactChunk.embedding_model, ArtifactChunk.embedding)
                         .where(ArtifactChunk.project_id == project)).all()
    return [(tag, len(unpack(blob)) if blob else 0) for tag, blob in rows]


def _api_client(make_client: Callable[..., TestClient], server: EmbeddingsServer, dims: int) -> TestClient:
    return make_client(kap_embeddings="api", kap_embeddings_url=server.url, kap_embeddings_model=f"fake-{dims}")


def test_vectors_are_built_in_the_background_then_retrieval_is_hybrid(
        make_client: Callable[..., TestClient], embeddings_server: EmbeddingsServer, world: World,
        db: Database) -> None:
    client = _api_client(make_client, embeddings_server, 32)
    ingest_corpus(client, world)
    upload(client, world, "b.txt", b"Project B facts stay in project B.", project=world.project_b, who="b_member")
    first = ask(client, world, "What is the planned go-live date?")
    assert first["retrieval"] == "fulltext"
    assert "September 1, 2026" in first["answer"]
    assert any("semantic index is being built" in n for n in first["notes"])
    tags = _tags(db, world.project_a)
    assert tags
    assert all(tag == "api:fake-32#32" and size == 32 for tag, size in tags)
    assert all(tag is None for tag, _ in _tags(db, world.project_b))  # only the asking project was embedded
    second = ask(client, world, "How many active worker records are converted?")
    assert second["retrieval"] == "hybrid"
    assert "48,200" in second["answer"]
    assert second["notes"] == []
    assert all(r["model"] == "fake-32" for r in embeddings_server.requests)


def test_a_model_change_re_embeds_and_never_mixes_sizes(make_client: Callable[..., TestClient],
                                                        embeddings_server: EmbeddingsServer, world: World,
                                                        db: Database) -> None:
    old = _api_client(make_client, embeddings_server, 32)
    upload(old, world, "Plan.txt", b"The planned go-live date is September 1, 2026.\n\nHypercare lasts six weeks.")
    ask(old, world, "When is go-live?")
    assert ask(old, world, "When is go-live?")["retrieval"] == "hybrid"
    new = _api_client(make_client, embeddings_server, 48)
    switching = ask(new, world, "When is go-live?")
    assert switching["retrieval"] == "fulltext"
    assert "September 1, 2026" in switching["answer"]
    assert {tag for tag, _ in _tags(db, world.project_a)} == {"api:fake-48#48"}
    assert ask(new, world, "When is go-live?")["retrieval"] == "hybrid"


def test_an_embeddings_outage_leaves_full_text_working(make_client: Callable[..., TestClient],
                                                       embeddings_server: EmbeddingsServer, world: World) -> None:
    client = _api_client(make_client, embeddings_server, 32)
    upload(client, world, "Plan.txt", b"The planned go-live date is September 1, 2026.")
    embeddings_server.fail = True
    body = ask(client, world, "What is the planned go-live date?")
    assert body["found"]
    assert body["retrieval"] == "fulltext"
    assert any("Semantic search is unavailable" in n for n in body["notes"])


def test_readyz_says_full_text_only_or_hybrid(make_client: Callable[..., TestClient],
                                              embeddings_server: EmbeddingsServer) -> None:
    off = make_client(kap_embeddings="off").get("/readyz").json()
    assert off["checks"]["search"]["mode"] == "fulltext"
    assert off["checks"]["search"]["ok"] is True
    on = _api_client(make_client, embeddings_server, 32).get("/readyz").json()
    assert on["checks"]["search"]["mode"] == "hybrid"
    assert on["checks"]["search"]["embeddings"] == {"backend": "api", "model": "fake-32"}


def test_embeddings_url_needs_a_model() -> None:
    from kap.core.settings import ConfigError, load_settings

    with pytest.raises(ConfigError, match="KAP_EMBEDDINGS_MODEL"):
        load_settings(kap_embeddings_url="http://127.0.0.1:9/v1")


@pytest.mark.slow
@pytest.mark.skipif(not local_installed(), reason="kap[semantic] is not installed")
def test_the_packaged_local_model_embeds_offline() -> None:
    model = LocalEmbedder()
    close, near, far = model.embed(["When does the payroll contract end?",
                                    "The payroll vendor agreement expires on August 31.",
                                    "Bananas are rich in potassium."])
    assert len(close) == 384
    dot = lambda a, b: sum(x * y for x, y in zip(a, b, strict=True))  # noqa: E731
    assert dot(close, near) > dot(close, far)


@pytest.mark.slow
@pytest.mark.skipif(not local_installed(), reason="kap[semantic] is not installed")
def test_hybrid_retrieval_with_the_local_model(make_client: Callable[..., TestClient], world: World) -> None:
    client = make_client(kap_embeddings="local")
    upload(client, world, "Plan.txt", b"The planned go-live date is September 1, 2026.\n\nHypercare lasts six weeks.")
    ask(client, world, "When is go-live?")
    body = ask(client, world, "When is go-live?")
    assert body["retrieval"] == "hybrid"
    assert "September 1, 2026" in body["answer"]


def test_the_periodic_job_catches_up_without_a_question(make_client: Callable[..., TestClient],
                                                        embeddings_server: EmbeddingsServer, world: World,
                                                        db: Database) -> None:
    from kap.ask.jobs import embed_all_pending

    client = _api_client(make_client, embeddings_server, 32)
    upload(client, world, "Plan.txt", b"The planned go-live date is September 1, 2026.")
    assert {tag for tag, _ in _tags(db, world.project_a)} == {None}
    embed_all_pending.call_local()
    assert {tag for tag, _ in _tags(db, world.project_a)} == {"api:fake-32#32"}
