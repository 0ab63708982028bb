"""Extraction runs in a child forked ahead of time, and a sync upload writes chunks while the file is read."""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from kap.core.db import Database
from kap.documents import sandbox, service
from kap.documents.models import ArtifactChunk
from kap.qa.samples import pdf_file
from tests.conftest import World
from tests.documents.conftest import upload

WORDS = ["milestone", "cutover", "payroll", "steering", "vendor", "budget", "interface", "sign-off", "risk"]


def text_pdf(pages: int, seed: int = 1) -> bytes:
    """A PDF of `pages` pages of sentences, one content stream each."""
    rng = random.Random(seed)
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"", b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for number in range(pages):
        lines = [f"Page {number + 1} " + " ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(40)]
        stream = ("BT /F1 10 Tf 40 780 Td 14 TL " + " ".join(f"({line}) '" for line in lines) + " ET").encode()
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                       b"/Resources << /Font << /F1 3 0 R >> >> >>" % len(objects))
        kids.append(len(objects))
    objects[1] = b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % k for k in kids) + b"] /Count %d >>" % pages
    return pdf_file(objects)


def _chunks(db: Database, artifact_id: str) -> int:
    with db.service_session() as session:
        return int(session.scalar(select(func.count()).select_from(ArtifactChunk)
                                  .where(ArtifactChunk.artifact_id == uuid.UUID(artifact_id))) or 0)


def test_a_waiting_extractor_applies_the_limits_in_force_when_its_file_arrives(tmp_path: Path) -> None:
    sandbox.warm()
    ready = sandbox.waiting()
    assert ready, "no extractor was forked ahead of time"
    source = tmp_path / "long.txt"
    source.write_text("status report line\n" * 20_000)
    tight = sandbox.Limits(memory=512 * 1024**2, cpu_seconds=60, wall_seconds=60, output_bytes=16 * 1024)
    with sandbox.start("text", "txt", source, tmp_path / "out", limits=tight) as running:
        assert running.pid in ready
        result = running.finish()
    assert not result.ok
    assert "more text than allowed" in (result.reason or "")


def test_the_extractor_pool_is_full_again_once_a_file_is_read(tmp_path: Path) -> None:
    """The child that read a file is replaced after the file is read (its fork no longer competes with
    the extraction), so the next upload still finds one waiting."""
    import time

    def full() -> bool:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if len(sandbox.waiting()) >= sandbox.POOL_SIZE:
                return True
            time.sleep(0.05)
        return False

    sandbox.warm()
    assert full()
    source = tmp_path / "note.txt"
    source.write_text("status report line\n" * 100)
    with sandbox.start("text", "txt", source, tmp_path / "out") as running:
        assert running.pid not in sandbox.waiting()
        assert running.finish().ok
    assert full(), sandbox.waiting()


def test_a_file_that_fails_half_way_leaves_no_chunks(client: TestClient, world: World, db: Database,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "OUTPUT_LIMIT", 48 * 1024)  # about a dozen of the 60 pages
    response = upload(client, world, "long report.pdf", content=text_pdf(60))
    assert response.status_code == 200, response.text
    document = response.json()["document"]
    assert document["status"] == "failed"
    assert "more text than allowed" in document["status_reason"]
    assert document["chunk_count"] == 0
    assert _chunks(db, document["id"]) == 0
    hits = client.get("/api/search", params={"project_id": str(world.project_a), "q": "cutover payroll"},
                      headers=world.h("lead")).json()["hits"]
    assert hits == []


def test_an_upload_past_the_write_lock_budget_is_written_whole(client: TestClient, world: World, db: Database,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "SQLITE_LOCK_SECONDS", 0.0)  # SQLite: roll back at once, write after reading
    response = upload(client, world, "forty pages.pdf", content=text_pdf(40))
    assert response.status_code == 200, response.text
    document = response.json()["document"]
    assert document["status"] == "ready"
    assert document["page_count"] == 40
    assert document["chunk_count"] == _chunks(db, document["id"]) > 40
    detail = client.get(f"/api/documents/{document['id']}", params={"project_id": str(world.project_a)},
                        headers=world.h("lead")).json()
    assert sorted({p["page"] for p in detail["pages"]}) == list(range(1, 41))
    again = upload(client, world, "forty pages again.pdf", content=text_pdf(40))
    assert again.status_code == 409


def test_a_later_upload_past_the_lock_budget_keeps_the_earlier_uploads_of_its_request(
        client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # The QA seeder uploads five files in one request: the budget must not roll back the ones already written.
    monkeypatch.setattr(service, "SQLITE_LOCK_SECONDS", 0.0)
    seeded = client.post(f"/api/dev/seed-simple?project_id={world.project_a}", headers=world.h("owner"))
    assert seeded.status_code == 200, seeded.text
    assert seeded.json()["documents"] == 5
    listed = client.get("/api/documents", params={"project_id": str(world.project_a)}, headers=world.h("member"))
    assert listed.json()["total"] == 5
    assert all(d["status"] in ("ready", "needs_ocr") for d in listed.json()["documents"])
