"""Reminders to signers of open links and the team's notice when a link expires unanswered."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from kap.core.db import Database, utcnow
from kap.core.mail import MailSuppression
from kap.core.migrate import alembic_config
from kap.core.models import EmailLog, Project, User
from kap.core.runtime import Runtime
from kap.stages.models import SignoffRequest
from kap.stages.reminders import notify_expired, send_reminders
from kap.stages.signoff import expire_overdue
from tests.conftest import World
from tests.stages.conftest import ask_signoff, make_stage, outbox_messages, parts, recipient, token_in

TWO_WEEKS = 14 * 24


def _open(client: TestClient, world: World, hours: int = TWO_WEEKS, **stage: object) -> tuple[str, str, str]:
    """A stage with an open link to a new signer: (stage id, request id, signer)."""
    made = make_stage(client, world, f"Design {uuid.uuid4().hex[:6]}", **stage)
    signer = recipient()
    sent = ask_signoff(client, world, made["id"], signer, name="Dana Sponsor", expires_in_hours=hours)
    return made["id"], sent["request_id"], signer


def _request(db: Database, request_id: str) -> SignoffRequest:
    with db.service_session() as s:
        req = s.get(SignoffRequest, uuid.UUID(request_id))
        assert req is not None
        return req


def _email(db: Database, user: uuid.UUID) -> str:
    with db.service_session() as s:
        found = s.get(User, user)
        assert found is not None
        assert found.email
        return found.email


def _comms(client: TestClient, world: World, **rules: object) -> None:
    response = client.put("/api/comms/settings", params={"project_id": str(world.project_a)}, json=rules,
                          headers=world.h("pm"))
    assert response.status_code == 200, response.text


@pytest.fixture(autouse=True)
def _no_quiet_hours(client: TestClient, world: World) -> None:
    """The default quiet hours (evening to morning, UTC) would hold back a reminder due at night."""
    _comms(client, world, quiet_start="", quiet_end="")


def test_a_due_reminder_mails_the_signer_once_with_a_link_that_works(
        client: TestClient, world: World, runtime: Runtime, db: Database, data_dir: Path) -> None:
    _, request_id, signer = _open(client, world)
    sent_at = _request(db, request_id).created_at

    assert uuid.UUID(request_id) not in send_reminders(runtime, sent_at + timedelta(days=2, hours=23)).sent
    assert len(outbox_messages(data_dir, signer)) == 1

    due = sent_at + timedelta(days=3, minutes=1)
    assert uuid.UUID(request_id) in send_reminders(runtime, due).sent
    assert uuid.UUID(request_id) not in send_reminders(runtime, due).sent  # a second pass sends nothing
    invite, reminder = outbox_messages(data_dir, signer)
    text, html = parts(reminder)
    assert str(reminder["Subject"]).startswith("Reminder: sign-off of Design")
    assert "still waiting for your decision" in text
    assert "/unsubscribe/" in str(reminder["List-Unsubscribe"])
    assert _email(db, world.users["pm"]) in str(reminder["Reply-To"])
    new_token, first_token = token_in(reminder), token_in(invite)
    assert new_token != first_token
    assert new_token in html
    page = client.get(f"/signoff/{new_token}")
    assert page.status_code == 200
    assert "Record my decision" in page.text
    assert client.get(f"/signoff/{first_token}").status_code == 200  # the first link still works

    req = _request(db, request_id)
    assert req.reminder_count == 1
    assert req.reminded_at == due


def test_reminders_stop_after_the_second_and_never_after_a_decision(
        client: TestClient, world: World, runtime: Runtime, db: Database, data_dir: Path) -> None:
    _, request_id, signer = _open(client, world)
    sent_at = _request(db, request_id).created_at
    for days in (3, 6, 9, 12):
        send_reminders(runtime, sent_at + timedelta(days=days, minutes=1))
    assert len(outbox_messages(data_dir, signer)) == 3  # the link and two reminders
    assert _request(db, request_id).reminder_count == 2
    links = [token_in(m) for m in outbox_messages(data_dir, signer)]
    assert len(set(links)) == 3
    for link in links:  # whichever email the signer opens, its link works
        page = client.get(f"/signoff/{link}")
        assert page.status_code == 200
        assert "Record my decision" in page.text

    _, decided_id, decided_signer = _open(client, world)
    token = token_in(outbox_messages(data_dir, decided_signer)[0])
    client.get(f"/signoff/{token}")
    assert client.post(f"/signoff/{token}", data={"decision": "approve", "name": "Dana"}).status_code == 200
    send_reminders(runtime, _request(db, decided_id).created_at + timedelta(days=4))
    assert len(outbox_messages(data_dir, decided_signer)) == 2  # the link and the copy of the decision


def test_a_short_link_is_reminded_as_its_last_day_begins(
        client: TestClient, world: World, runtime: Runtime, db: Database, data_dir: Path) -> None:
    _, request_id, signer = _open(client, world, hours=72)
    sent_at = _request(db, request_id).created_at
    assert uuid.UUID(request_id) not in send_reminders(runtime, sent_at + timedelta(hours=47)).sent
    assert uuid.UUID(request_id) in send_reminders(runtime, sent_at + timedelta(hours=48, minutes=1)).sent
    assert uuid.UUID(request_id) not in send_reminders(runtime, sent_at + timedelta(hours=71)).sent
    assert len(outbox_messages(data_dir, signer)) == 2


def test_the_project_setting_sets_the_delay_and_zero_turns_reminders_off(
        client: TestClient, world: World, runtime: Runtime, db: Database, data_dir: Path) -> None:
    q = {"project_id": str(world.project_a)}
    assert client.get("/api/signoff-settings", params=q, headers=world.h("member")).json()["reminder_days"] == 3
    assert client.put("/api/signoff-settings", params=q, json={"reminder_days": 1},
                      headers=world.h("member")).status_code == 403
    saved = client.put("/api/signoff-settings", params=q, json={"reminder_days": 1}, headers=world.h("pm"))
    assert saved.status_code == 200, saved.text
    assert saved.json() == {"reminder_days": 1, "max_reminders": 2, "require_code": False}
    bad = client.put("/api/signoff-settings", params=q, json={"reminder_days": 99}, headers=world.h("pm"))
    assert bad.status_code == 422
    _, request_id, signer = _open(client, world)
    sent_at = _request(db, request_id).created_at
    assert uuid.UUID(request_id) in send_reminders(runtime, sent_at + timedelta(days=1, minutes=1)).sent

    client.put("/api/signoff-settings", params=q, json={"reminder_days": 0}, headers=world.h("pm"))
    _, quiet_id, _ = _open(client, world)
    assert uuid.UUID(quiet_id) not in send_reminders(runtime, sent_at + timedelta(days=10)).sent


def test_quiet_hours_defer_a_reminder_until_they_end(
        client: TestClient, world: World, runtime: Runtime, db: Database, data_dir: Path) -> None:
    _, request_id, signer = _open(client, world)
    due = _request(db, request_id).created_at + timedelta(days=3, minutes=1)
    zone = ZoneInfo("America/New_York")
    local = due.astimezone(zone)
    _comms(client, world, timezone="America/New_York", quiet_start=f"{(local.hour - 1) % 24:02d}:00",
           quiet_end=f"{(local.hour + 2) % 24:02d}:00")

    report = send_reminders(runtime, due)
    assert uuid.UUID(request_id) not in report.sent
    assert report.deferred.get("quiet_hours", 0) >= 1
    assert len(outbox_messages(data_dir, signer)) == 1
    assert _request(db, request_id).reminder_count == 0

    after = datetime.combine(local.date(), local.time().replace(minute=0, second=0, microsecond=0), zone) \
        + timedelta(hours=2, minutes=5)
    assert uuid.UUID(request_id) in send_reminders(runtime, after).sent
    assert len(outbox_messages(data_dir, signer)) == 2


def test_the_daily_cap_defers_and_suppression_or_unsubscribe_stop_reminders(
        client: TestClient, world: World, runtime: Runtime, db: Database, data_dir: Path) -> None:
    _, capped_id, capped = _open(client, world)
    due = _request(db, capped_id).created_at + timedelta(days=3, minutes=1)
    _comms(client, world, daily_cap=1)
    with db.service_transaction() as s:
        s.add(EmailLog(org_id=world.org1, project_id=world.project_a, kind="signoff", recipient=capped,
                       subject="earlier today", provider="outbox", status="saved", created_at=due))
    report = send_reminders(runtime, due)
    assert uuid.UUID(capped_id) not in report.sent
    assert report.deferred.get("daily_cap", 0) >= 1
    assert uuid.UUID(capped_id) in send_reminders(runtime, due + timedelta(days=1)).sent
    _comms(client, world, daily_cap=20)

    _, suppressed_id, suppressed = _open(client, world)
    with db.service_transaction() as s:
        s.add(MailSuppression(email=suppressed, reason="bounce"))
    report = send_reminders(runtime, due)
    assert uuid.UUID(suppressed_id) not in report.sent
    assert report.skipped.get("suppressed", 0) >= 1
    assert len(outbox_messages(data_dir, suppressed)) == 1
    with db.service_session() as s:
        assert s.scalar(select(EmailLog.id).where(EmailLog.recipient == suppressed,
                                                  EmailLog.kind == "signoff_reminder")) is None

    _, left_id, left = _open(client, world)
    sent_at = _request(db, left_id).created_at
    assert uuid.UUID(left_id) in send_reminders(runtime, sent_at + timedelta(days=3, minutes=1)).sent
    reminder = outbox_messages(data_dir, left)[1]
    opt_out = str(reminder["List-Unsubscribe"]).strip().strip("<>").removeprefix("http://testserver")
    assert client.post(opt_out).status_code == 200
    report = send_reminders(runtime, sent_at + timedelta(days=6, minutes=2))
    assert uuid.UUID(left_id) not in report.sent
    assert report.skipped.get("unsubscribed", 0) >= 1
    assert len(outbox_messages(data_dir, left)) == 2


def test_an_unanswered_link_that_expires_tells_the_requester_and_owner_once(
        client: TestClient, world: World, runtime: Runtime, db: Database, data_dir: Path) -> None:
    _, request_id, signer = _open(client, world, hours=1, owner_id=str(world.users["lead"]))
    later = _request(db, request_id).created_at + timedelta(hours=2)
    assert expire_overdue(db, later) >= 1
    assert notify_expired(runtime, later) >= 1
    assert notify_expired(runtime, later) == 0
    for who in ("pm", "lead"):
        [notice] = [m for m in outbox_messages(data_dir, _email(db, world.users[who]))
                    if str(m["Subject"]).startswith("Sign-off link expired")]
        text, _ = parts(notice)
        assert "expired" in text
        assert signer in text or "Dana Sponsor" in text
        assert signer in str(notice["Reply-To"])
        assert f"/p/{world.project_a}/stages" in text
    assert _request(db, request_id).expiry_notified_at is not None
    assert len(outbox_messages(data_dir, signer)) == 1  # the signer is not told again


def test_archived_projects_send_no_reminders_or_notices(
        client: TestClient, world: World, runtime: Runtime, db: Database, data_dir: Path) -> None:
    _, request_id, signer = _open(client, world)
    _, short_id, _ = _open(client, world, hours=1)
    sent_at = _request(db, request_id).created_at
    with db.service_transaction() as s:
        project = s.get(Project, world.project_a)
        assert project is not None
        project.archived_at = utcnow()
    assert uuid.UUID(request_id) not in send_reminders(runtime, sent_at + timedelta(days=3, minutes=1)).sent
    expire_overdue(db, sent_at + timedelta(hours=2))
    notify_expired(runtime, sent_at + timedelta(hours=2))
    assert _request(db, short_id).expiry_notified_at is None
    assert len(outbox_messages(data_dir, signer)) == 1


def test_the_reminder_link_of_a_request_reminded_before_the_upgrade_keeps_working(
        client: TestClient, world: World, runtime: Runtime, db: Database, data_dir: Path) -> None:
    _, request_id, signer = _open(client, world)
    send_reminders(runtime, _request(db, request_id).created_at + timedelta(days=3, minutes=1))
    reminder_link = token_in(outbox_messages(data_dir, signer)[-1])
    cfg = alembic_config(runtime.settings.database_url, runtime.settings.kap_app_db_role)
    db.dispose()
    command.downgrade(cfg, "stages_0003")  # the link back in its column, as the schema before kept it
    try:
        with db.service_session() as s:
            assert s.execute(text("SELECT count(*) FROM signoff_requests WHERE reminder_token_hash IS NOT NULL")
                             ).scalar_one() >= 1
    finally:
        db.dispose()
        command.upgrade(cfg, "heads")
    assert client.get(f"/signoff/{reminder_link}").status_code == 200
