"""The digest builder and its preview: sections, escaping, tenant walls and external views."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import time_machine
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from kap.comms.digest import Period, Recipient, build_digest
from kap.comms.scheduler import digest_tick
from kap.core.audit import record_audit
from kap.core.db import Database, utcnow
from kap.core.models import EmailLog, User
from kap.core.runtime import Runtime
from kap.core.scope import ProjectScope, reach, trusted_scope
from kap.stages.models import SignoffRequest, Stage
from tests.comms.conftest import add_artifact, digest_log
from tests.comms.test_settings_api import put_settings
from tests.conftest import Factory, World


def preview(client: TestClient, world: World, who: str = "pm", project: uuid.UUID | None = None) -> dict[str, Any]:
    response = client.get("/api/digest/preview", params={"project_id": str(project or world.project_a)},
                          headers=world.h(who))
    assert response.status_code == 200, response.text
    return response.json()


def email_of(db: Database, user_id: uuid.UUID) -> str:
    with db.service_session() as s:
        email = s.scalar(select(User.email).where(User.id == user_id))
    assert email
    return email


def test_preview_has_the_documented_shape(client: TestClient, world: World, db: Database) -> None:
    add_artifact(db, world.project_a, "Fit-gap.xlsx")
    add_artifact(db, world.project_a, "Old scan.pdf", version=2, created_at=utcnow() - timedelta(days=30),
                 updated_at=utcnow() - timedelta(days=1))
    add_artifact(db, world.project_a, "Payslip scan.pdf", status="needs_ocr", created_at=utcnow() - timedelta(days=60))
    body = preview(client, world)
    assert body["ok"] is True
    assert body["project"] == {"id": str(world.project_a), "name": "A"}
    assert set(body["period"]) == {"start", "end"}
    assert body["counts"]["documents_added"] == 1
    assert body["counts"]["documents_reingested"] == 1
    assert body["counts"]["ocr_backlog"] == 1
    keys = [s["key"] for s in body["sections"]]
    assert keys == ["documents_added", "documents_reingested", "ocr_backlog"]
    item = body["sections"][0]["items"][0]
    assert item["title"] == "Fit-gap.xlsx"
    assert item["url"].startswith(f"http://testserver/p/{world.project_a}/documents/")
    assert "Fit-gap.xlsx" in body["html"]
    assert "Fit-gap.xlsx" in body["text"]


def test_preview_needs_pm(client: TestClient, world: World) -> None:
    response = client.get("/api/digest/preview", params={"project_id": str(world.project_a)},
                          headers=world.h("lead"))
    assert response.status_code == 403


def test_html_escapes_everything(client: TestClient, world: World, db: Database) -> None:
    add_artifact(db, world.project_a, '<script>alert("x")</script>.pdf')
    body = preview(client, world)
    assert "<script>" not in body["html"]
    assert "&lt;script&gt;" in body["html"]


def test_digest_for_a_contains_nothing_from_b_even_for_the_same_recipient(
        bound: Runtime, world: World, factory: Factory) -> None:
    both = factory.user(world.org1, "member")
    factory.member(world.org1, world.project_a, both, "member")
    factory.member(world.org1, world.project_b, both, "member")
    add_artifact(bound.db, world.project_a, "A-only charter.docx", created_at=datetime(2027, 1, 2, tzinfo=UTC))
    add_artifact(bound.db, world.project_b, "B-secret payroll.xlsx", created_at=datetime(2027, 1, 2, tzinfo=UTC))
    with time_machine.travel(datetime(2027, 1, 4, 9, 0, tzinfo=UTC), tick=False):
        digest_tick(bound, utcnow(), projects=[world.project_a, world.project_b])
    address = email_of(bound.db, both)
    mine_a = [r for r in digest_log(bound.db, world.project_a) if r.recipient == address]
    mine_b = [r for r in digest_log(bound.db, world.project_b) if r.recipient == address]
    assert len(mine_a) == 1
    assert len(mine_b) == 1
    body_a, body_b = Path(mine_a[0].path or "").read_text(), Path(mine_b[0].path or "").read_text()
    assert "A-only charter.docx" in body_a
    assert "B-secret payroll" not in body_a
    assert "B-secret payroll.xlsx" in body_b
    assert "A-only charter" not in body_b


def test_builder_in_a_members_context_cannot_read_another_project(runtime: Runtime, world: World) -> None:
    add_artifact(runtime.db, world.project_b, "B-only.pdf")
    member = Recipient.member(world.users["member"], email_of(runtime.db, world.users["member"]))
    period = Period(utcnow() - timedelta(days=7), utcnow() + timedelta(minutes=1))
    with runtime.db.app_session(member.user_id) as session:
        found = reach(session, world.users["member"], world.project_a)
        assert found is not None
        digest = build_digest(session, found.scope, period, member)
    assert "B-only" not in digest.html
    assert digest.counts["documents_added"] == 0


def test_external_recipient_sees_only_shareable_documents(runtime: Runtime, world: World) -> None:
    add_artifact(runtime.db, world.project_a, "Shared plan.pdf", shareable=True)
    add_artifact(runtime.db, world.project_a, "Internal notes.docx")
    period = Period(utcnow() - timedelta(days=7), utcnow() + timedelta(minutes=1))
    outside = Recipient.outside("client@example.com")
    with runtime.db.service_session() as session:
        digest = build_digest(session, _trusted(session, world.project_a), period, outside, base_url="http://kap")
    assert "Shared plan.pdf" in digest.text
    assert "Internal notes" not in digest.text
    assert digest.counts["documents_added"] == 1
    assert all(item.url is None for s in digest.sections for item in s.items)


def _trusted(session: Session, project_id: uuid.UUID) -> ProjectScope:
    scope = trusted_scope(session, project_id, purpose="test")
    assert scope is not None
    return scope


def add_stage_activity(db: Database, world: World) -> None:
    now = utcnow()
    with db.service_transaction() as s:
        for n, (status, decided, expires) in enumerate((("approved", now, now + timedelta(days=7)),
                                                        ("rejected", now, now + timedelta(days=7)),
                                                        ("pending", None, now - timedelta(hours=1)))):
            stage = Stage(org_id=world.org1, project_id=world.project_a, title=f"Discovery {n}", position=n,
                          status="in_review", summary="")
            s.add(stage)
            s.flush()
            s.add(SignoffRequest(org_id=world.org1, project_id=world.project_a, stage_id=stage.id,
                                 recipient_email="signer@example.com", status=status, decided_at=decided,
                                 expires_at=expires, token_hash=uuid.uuid4().hex, open_count=0, snapshot={},
                                 channel="external"))
        record_audit(s, org_id=world.org1, project_id=world.project_a, actor_id=None, action="stage.status_changed",
                     target_type="stage", target_id=stage.id,
                     details={"title": "Discovery", "from": "in_progress", "to": "in_review"})


def test_stages_and_signoffs_appear_for_members_only(client: TestClient, world: World, runtime: Runtime) -> None:
    add_stage_activity(runtime.db, world)
    body = preview(client, world)
    assert body["counts"]["stages_moved"] == 1
    assert body["counts"]["signoffs_requested"] == 3
    assert body["counts"]["signoffs_approved"] == 1
    assert body["counts"]["signoffs_rejected"] == 1
    assert body["counts"]["signoffs_overdue"] == 1
    assert "Discovery" in body["text"]
    assert "in progress → in review" in body["text"]
    with runtime.db.service_session() as session:
        outside = build_digest(session, _trusted(session, world.project_a),
                               Period(utcnow() - timedelta(days=7), utcnow()), Recipient.outside("client@example.com"))
    assert outside.counts["stages_moved"] == 0
    assert "Discovery" not in outside.text


def test_send_now_goes_to_the_test_address(make_client: object, world: World, db: Database) -> None:
    client = make_client(digest_test_email="qa-inbox@example.com")  # type: ignore[operator]
    add_artifact(db, world.project_a, "Internal notes.docx")
    response = client.post("/api/digest/send", params={"project_id": str(world.project_a)}, json={},
                           headers=world.h("pm"))
    assert response.status_code == 200, response.text
    assert response.json()["to"] == "qa-inbox@example.com"
    assert response.json()["status"] == "saved"
    with db.service_session() as s:
        row = s.scalar(select(EmailLog).where(EmailLog.project_id == world.project_a, EmailLog.kind == "digest_test"))
    assert row is not None
    assert row.recipient == "qa-inbox@example.com"
    assert "Internal notes.docx" in Path(row.path or "").read_text()


def test_send_now_to_an_outsider_shows_the_external_view(client: TestClient, world: World, db: Database) -> None:
    add_artifact(db, world.project_a, "Internal notes.docx")
    response = client.post("/api/digest/send", params={"project_id": str(world.project_a)},
                           json={"to": "someone@example.com"}, headers=world.h("pm"))
    assert response.status_code == 200, response.text
    assert response.json()["counts"]["documents_added"] == 0


def test_send_now_without_any_address_is_422(client: TestClient, world: World) -> None:
    response = client.post("/api/digest/send", params={"project_id": str(world.project_a)}, json={},
                           headers=world.h("pm"))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "no_recipient"


def test_the_period_reads_in_the_project_time_zone(client: TestClient, world: World) -> None:
    sent = put_settings(client, world, {"timezone": "Pacific/Auckland", "quiet_start": None, "quiet_end": None,
                                        "daily_cap": 20, "digest_weekday": 0, "digest_hour": 9})
    assert sent.status_code == 200, sent.text
    with time_machine.travel(datetime(2026, 3, 1, 20, 0, tzinfo=UTC), tick=False):  # Mon 09:00 Auckland, Sun UTC
        body = preview(client, world)
    assert "(UTC)" not in body["text"]
    assert "23 Feb – 02 Mar 2026 (Pacific/Auckland)" in body["text"]
    assert "23 Feb – 02 Mar 2026 (Pacific/Auckland)" in body["html"]
    assert "UTC" not in body["subject"]
