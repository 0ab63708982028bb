"""Ingest the Northwind corpus end to end, on local disk and on a real S3-protocol server."""

from __future__ import annotations

import json
import shutil

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from kap.core.models import AuditEvent
from kap.core.runtime import Runtime
from kap.documents.models import Artifact
from tests.conftest import FIXTURES, World
from tests.documents.conftest import CORPUS, chunk_text, ingest_corpus, upload

# Which document must hold each fact of northwind-questions.json.
FACT_SOURCES = {
    "September 1, 2026": "SOW-2026-014 Northwind Workday.pdf",
    "Dana Whitfield": "SOW-2026-014 Northwind Workday.pdf",
    "1,240,000": "SOW-2026-014 Northwind Workday.pdf",
    "Tuesday": "Kickoff minutes 2026-01-13.docx",
    "10:00": "Kickoff minutes 2026-01-13.docx",
    "1,800": "Test strategy.txt",
    "Kronos": "Integration inventory.csv",
    "48,200": "Data conversion plan.md",
    "24 hours": "Test strategy.txt",
}
KINDS = {
    "CR-004 signed scan.pdf": "pdf", "CR-004 signed scan.png": "png", "Cutover notes.md": "md",
    "Data conversion plan.md": "md", "Integration inventory.csv": "csv",
    "Kickoff minutes 2026-01-13.docx": "docx", "RAID log.xlsx": "xlsx",
    "SOW-2026-014 Northwind Workday.pdf": "pdf", "Steering committee 2026-03-05.pptx": "pptx",
    "Test strategy.txt": "txt", "Weekly status week 6.eml": "eml",
}


def test_every_corpus_fact_lands_in_the_right_document(docs_client: TestClient, world: World) -> None:
    docs = ingest_corpus(docs_client, world)
    questions = json.loads((FIXTURES / "northwind-questions.json").read_text())
    facts = [fact for q in questions for fact in q["answer_contains"]]
    assert set(facts) == set(FACT_SOURCES)
    for fact in facts:
        doc = docs[FACT_SOURCES[fact]]
        assert fact in chunk_text(docs_client, world, doc["id"]), (fact, doc["name"])
    for name, doc in docs.items():
        assert doc["kind"] == KINDS[name]


def test_formats_keep_their_page_sheet_and_slide(docs_client: TestClient, world: World) -> None:
    docs = ingest_corpus(docs_client, world)
    params = {"project_id": str(world.project_a)}
    sow = docs_client.get(f"/api/documents/{docs['SOW-2026-014 Northwind Workday.pdf']['id']}", params=params,
                          headers=world.h("member")).json()
    assert sow["page_count"] == 2
    assert [p["page"] for p in sow["pages"]] == [1, 2]
    assert "Dana Whitfield" in sow["pages"][1]["text"]
    deck = docs_client.get(f"/api/documents/{docs['Steering committee 2026-03-05.pptx']['id']}", params=params,
                           headers=world.h("member")).json()
    assert [p["locator"] for p in deck["pages"]] == ["Slide 1", "Slide 2", "Slide 3"]
    raid = chunk_text(docs_client, world, docs["RAID log.xlsx"]["id"])
    row = next(line for line in raid.splitlines() if "R-07" in line)
    assert "Owner: Dana Whitfield" in row
    assert "ID: R-07" in row
    mail = chunk_text(docs_client, world, docs["Weekly status week 6.eml"]["id"])
    assert "Subject: Northwind Workday - weekly status, week 6" in mail
    assert "integrations are behind" in mail


def test_scanned_page_goes_to_the_ocr_lane_and_ocr_makes_it_searchable(docs_client: TestClient,
                                                                       world: World) -> None:
    if shutil.which("tesseract") is None:
        pytest.skip("tesseract-ocr is not installed")
    params = {"project_id": str(world.project_a)}
    doc = upload(docs_client, world, CORPUS / "CR-004 signed scan.pdf").json()["document"]
    assert doc["status"] == "needs_ocr"
    assert doc["ocr_pages"] == [1]
    lane = docs_client.get("/api/ocr/queue", params=params, headers=world.h("member")).json()
    assert [d["id"] for d in lane["documents"]] == [doc["id"]]
    assert lane["ocr_available"] is True
    assert docs_client.get("/api/search", params={**params, "q": "86,500"},
                           headers=world.h("member")).json()["hits"] == []

    response = docs_client.post("/api/ocr/resolve", params={**params, "artifact_id": doc["id"]},
                                json={"mode": "ocr"}, headers=world.h("lead"))
    assert response.status_code == 202, response.text

    lane = docs_client.get("/api/ocr/queue", params=params, headers=world.h("member")).json()
    assert lane["documents"] == []
    hits = docs_client.get("/api/search", params={**params, "q": "86,500"}, headers=world.h("member")).json()["hits"]
    assert [h["artifact_id"] for h in hits] == [doc["id"]]
    assert hits[0]["page"] == 1
    assert "<mark>86" in hits[0]["snippet"]
    assert hits[0]["link"] == f"/p/{world.project_a}/documents/{doc['id']}#page=1"


def test_pasted_text_resolves_the_lane(docs_client: TestClient, world: World) -> None:
    params = {"project_id": str(world.project_a)}
    doc = upload(docs_client, world, CORPUS / "CR-004 signed scan.png").json()["document"]
    assert doc["status"] == "needs_ocr"
    response = docs_client.post("/api/ocr/resolve", params={**params, "artifact_id": doc["id"]},
                                json={"mode": "text", "text": "Change request CR-004, cost impact $86,500"},
                                headers=world.h("lead"))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ready"
    hits = docs_client.get("/api/search", params={**params, "q": "cost impact"},
                           headers=world.h("member")).json()["hits"]
    assert [h["artifact_id"] for h in hits] == [doc["id"]]
    again = docs_client.post("/api/ocr/resolve", params={**params, "artifact_id": doc["id"]},
                             json={"mode": "text", "text": "x"}, headers=world.h("lead"))
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "not_in_lane"


def test_ocr_unavailable_is_a_clear_409(client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    params = {"project_id": str(world.project_a)}
    doc = upload(client, world, CORPUS / "CR-004 signed scan.png").json()["document"]
    monkeypatch.setenv("PATH", "/nonexistent")
    response = client.post("/api/ocr/resolve", params={**params, "artifact_id": doc["id"]}, json={"mode": "ocr"},
                           headers=world.h("lead"))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "ocr_unavailable"


def test_duplicate_upload_is_reported_not_stored_twice(docs_client: TestClient, world: World,
                                                       runtime: Runtime) -> None:
    first = upload(docs_client, world, CORPUS / "Test strategy.txt")
    assert first.status_code == 200
    second = upload(docs_client, world, CORPUS / "Test strategy.txt", name="copy of strategy.txt")
    assert second.status_code == 409, second.text
    error = second.json()["error"]
    assert error["code"] == "duplicate"
    assert error["details"]["artifact_id"] == first.json()["document"]["id"]
    with runtime.db.service_transaction() as s:
        rows = s.scalars(select(Artifact).where(Artifact.project_id == world.project_a)).all()
        assert len(rows) == 1


def test_async_ingest_answers_202_and_the_job_makes_it_ready(docs_client: TestClient, world: World) -> None:
    response = upload(docs_client, world, CORPUS / "Data conversion plan.md", sync=False)
    assert response.status_code == 202, response.text
    doc = response.json()["document"]
    assert doc["status"] == "queued"
    detail = docs_client.get(f"/api/documents/{doc['id']}", params={"project_id": str(world.project_a)},
                             headers=world.h("member")).json()
    assert detail["status"] == "ready"
    assert "48,200" in "\n".join(p["text"] for p in detail["pages"])


def test_reingest_bumps_the_version_and_keeps_one_copy_of_the_chunks(docs_client: TestClient, world: World,
                                                                     runtime: Runtime) -> None:
    doc = upload(docs_client, world, CORPUS / "RAID log.xlsx").json()["document"]
    params = {"project_id": str(world.project_a), "artifact_id": doc["id"]}
    response = docs_client.post("/api/reingest-stored", params=params, headers=world.h("lead"))
    assert response.status_code == 200, response.text
    again = response.json()["document"]
    assert again["version"] == 2
    assert again["chunk_count"] == doc["chunk_count"]
    assert again["status"] == "ready"
    hits = docs_client.get("/api/search", params={"project_id": str(world.project_a), "q": "R-07"},
                           headers=world.h("member")).json()["hits"]
    assert len({h["chunk_id"] for h in hits}) == len(hits) == 1
    with runtime.db.service_transaction() as s:
        actions = s.scalars(select(AuditEvent.action).where(AuditEvent.project_id == world.project_a,
                                                            AuditEvent.target_id == doc["id"])).all()
    assert set(actions) == {"document.uploaded", "document.reingested"}


def test_email_attachments_become_child_documents(client: TestClient, world: World) -> None:
    raw = (b"From: a@example.test\r\nTo: b@example.test\r\nSubject: files\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\n"
           b"See the attached plan.\r\n--XX\r\nContent-Type: text/plain\r\n"
           b"Content-Disposition: attachment; filename=\"../../plan.txt\"\r\n\r\n"
           b"Payroll parallel run three finishes in July.\r\n--XX--\r\n")
    response = upload(client, world, "mail.eml", content=raw)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [c["name"] for c in body["children"]] == ["plan.txt"]
    child = body["children"][0]
    assert child["parent_id"] == body["document"]["id"]
    assert child["status"] == "ready"
    hits = client.get("/api/search", params={"project_id": str(world.project_a), "q": "parallel run"},
                      headers=world.h("member")).json()["hits"]
    assert [h["artifact_id"] for h in hits] == [child["id"]]


def test_list_filters_and_pages(client: TestClient, world: World) -> None:
    ingest_corpus(client, world)
    params = {"project_id": str(world.project_a)}
    every = client.get("/api/documents", params=params, headers=world.h("member")).json()
    assert every["total"] == 11
    lane = client.get("/api/documents", params={**params, "status": "needs_ocr"}, headers=world.h("member")).json()
    assert {d["name"] for d in lane["documents"]} == {"CR-004 signed scan.pdf", "CR-004 signed scan.png"}
    pdfs = client.get("/api/documents", params={**params, "type": "pdf"}, headers=world.h("member")).json()
    assert pdfs["total"] == 2
    named = client.get("/api/documents", params={**params, "name": "RAID"}, headers=world.h("member")).json()
    assert [d["name"] for d in named["documents"]] == ["RAID log.xlsx"]
    literal = client.get("/api/documents", params={**params, "name": "%"}, headers=world.h("member")).json()
    assert literal["total"] == 0
    page1 = client.get("/api/documents", params={**params, "limit": 4}, headers=world.h("member")).json()
    page3 = client.get("/api/documents", params={**params, "limit": 4, "offset": 8}, headers=world.h("member")).json()
    assert len(page1["documents"]) == 4
    assert len(page3["documents"]) == 3
    past = client.get("/api/documents", params={**params, "limit": 4, "offset": 20}, headers=world.h("member")).json()
    assert (past["total"], past["documents"]) == (11, [])
    named_pdfs = client.get("/api/documents", params={**params, "type": "pdf", "name": "scan"},
                            headers=world.h("member")).json()
    assert [d["name"] for d in named_pdfs["documents"]] == ["CR-004 signed scan.pdf"]
    for listed in every["documents"]:  # a listed row reads like the document's own view
        detail = client.get(f"/api/documents/{listed['id']}", params=params, headers=world.h("member")).json()
        assert listed == {key: detail[key] for key in listed}
    bad = client.get("/api/documents", params={**params, "status": "weird"}, headers=world.h("member"))
    assert bad.status_code == 422


def test_download_is_an_attachment_with_a_safe_name(docs_client: TestClient, world: World) -> None:
    source = CORPUS / "Kickoff minutes 2026-01-13.docx"
    doc = upload(docs_client, world, source, name="Résumé \u202egnp.docx").json()["document"]
    assert doc["name"] == "Résumé gnp.docx"
    response = docs_client.get(f"/api/documents/{doc['id']}/download", params={"project_id": str(world.project_a)},
                               headers=world.h("member"))
    assert response.status_code == 200
    assert response.content == source.read_bytes()
    assert response.headers["x-content-type-options"] == "nosniff"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="R_sum_ gnp.docx"')
    assert "filename*=UTF-8''R%C3%A9sum%C3%A9%20gnp.docx" in disposition


def test_delete_removes_the_file_chunks_and_hits(docs_client: TestClient, world: World) -> None:
    params = {"project_id": str(world.project_a)}
    doc = upload(docs_client, world, CORPUS / "Test strategy.txt").json()["document"]
    runtime: Runtime = docs_client.app.state.runtime  # type: ignore[attr-defined]
    key = f"artifacts/{world.org1.hex}/{world.project_a.hex}/{doc['id'].replace('-', '')}/1"
    assert runtime.storage.artifacts.exists(key)
    response = docs_client.delete(f"/api/documents/{doc['id']}", params=params, headers=world.h("lead"))
    assert response.status_code == 200, response.text
    assert not runtime.storage.artifacts.exists(key)
    assert docs_client.get(f"/api/documents/{doc['id']}", params=params, headers=world.h("member")).status_code == 404
    hits = docs_client.get("/api/search", params={**params, "q": "1,800"}, headers=world.h("member")).json()["hits"]
    assert hits == []
    with runtime.db.service_transaction() as s:
        actions = s.scalars(select(AuditEvent.action).where(AuditEvent.target_id == doc["id"])).all()
    assert set(actions) == {"document.uploaded", "document.deleted"}


def test_internal_bearer_may_ingest_sync_into_a_named_project(client: TestClient, world: World,
                                                              runtime: Runtime) -> None:
    bearer = {"Authorization": f"Bearer {runtime.settings.internal_api_bearer}"}
    response = client.post("/api/ingest-sync", params={"project_id": str(world.project_a)}, headers=bearer,
                           files={"file": ("notes.md", b"# Cutover\nFreeze starts August 24.", "text/markdown")})
    assert response.status_code == 200, response.text
    assert response.json()["document"]["status"] == "ready"
    other = client.post("/api/ingest", params={"project_id": str(world.project_a)}, headers=bearer,
                        files={"file": ("n.md", b"# x", "text/markdown")})
    assert other.status_code == 401


def test_members_read_but_only_leads_write(client: TestClient, world: World) -> None:
    response = upload(client, world, CORPUS / "Test strategy.txt", who="member")
    assert response.status_code == 403
    doc = upload(client, world, CORPUS / "Test strategy.txt", who="lead").json()["document"]
    params = {"project_id": str(world.project_a)}
    assert client.get(f"/api/documents/{doc['id']}", params=params, headers=world.h("member")).status_code == 200
    assert client.delete(f"/api/documents/{doc['id']}", params=params, headers=world.h("member")).status_code == 403
    other = client.get(f"/api/documents/{doc['id']}", params={"project_id": str(world.project_b)},
                       headers=world.h("b_member"))
    assert other.status_code == 404
    assert other.json()["error"]["message"] == "document not found"
