"""One outbox: every message is queued in a transaction and leaves only after it commits."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from kap.core.db import Database, utcnow
from kap.core.mail import Mail, queued
from kap.core.models import EmailLog, LoginToken, User
from kap.core.runtime import Runtime
from kap.core.security import hash_token
from tests.conftest import World, outbox_messages


def _logged(db: Database, to: str) -> int:
    with db.service_session() as s:
        return s.scalar(select(func.count()).select_from(EmailLog).where(EmailLog.recipient == to)) or 0


def _address() -> str:
    return f"someone-{uuid.uuid4().hex[:10]}@client.example.com"


def test_mail_leaves_only_after_commit(runtime: Runtime, db: Database, data_dir: Path) -> None:
    to = _address()
    with db.service_transaction() as session:
        item = runtime.mailer.queue(session, Mail(to=to, subject="Hello", text="After commit"))
        assert queued(session) == [item.mail]
        assert outbox_messages(data_dir, to) == []
        assert item.result is None
    assert item.result is not None
    assert item.result.status == "saved"
    [msg] = outbox_messages(data_dir, to)
    assert "After commit" in str(msg.get_body(("plain",)).get_content())
    assert _logged(db, to) == 1


def test_rollback_sends_nothing(runtime: Runtime, db: Database, data_dir: Path) -> None:
    to = _address()
    def queue_then_fail() -> None:
        with db.service_transaction() as session:
            runtime.mailer.queue(session, Mail(to=to, subject="Never", text="Never"))
            session.add(User(email=to))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        queue_then_fail()
    assert outbox_messages(data_dir, to) == []
    assert _logged(db, to) == 0
    with db.service_session() as s:
        assert s.scalar(select(User).where(User.email == to)) is None


def test_a_rolled_back_savepoint_drops_only_its_own_mail(runtime: Runtime, db: Database, data_dir: Path) -> None:
    kept, dropped = _address(), _address()
    with db.service_transaction() as session:
        runtime.mailer.queue(session, Mail(to=kept, subject="Kept", text="Kept"))
        savepoint = session.begin_nested()
        runtime.mailer.queue(session, Mail(to=dropped, subject="Dropped", text="Dropped"))
        savepoint.rollback()
    assert len(outbox_messages(data_dir, kept)) == 1
    assert outbox_messages(data_dir, dropped) == []


def test_a_released_savepoint_sends_nothing_until_its_transaction_commits(
        runtime: Runtime, db: Database, data_dir: Path) -> None:
    to = _address()

    def release_then_fail() -> None:
        with db.service_transaction() as session:
            with session.begin_nested():
                runtime.mailer.queue(session, Mail(to=to, subject="Never", text="Never"))
            assert outbox_messages(data_dir, to) == []  # released, not committed: still waiting
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        release_then_fail()
    assert outbox_messages(data_dir, to) == []
    assert _logged(db, to) == 0


def test_refused_signoff_request_mails_nothing(client: TestClient, world: World, data_dir: Path) -> None:
    pa = {"project_id": str(world.project_a)}
    stage = client.post("/api/stages", params=pa, json={"title": "Design"}, headers=world.h("pm")).json()
    first, second = _address(), _address()
    url = f"/api/stages/{stage['id']}/signoff-requests"
    assert client.post(url, params=pa, json={"email_to": first}, headers=world.h("pm")).status_code == 201
    refused = client.post(url, params=pa, json={"email_to": second}, headers=world.h("pm"))
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "signoff_pending"
    assert len(outbox_messages(data_dir, first)) == 1
    assert outbox_messages(data_dir, second) == []


def test_invitation_checks_the_role_before_anything(client: TestClient, world: World, db: Database,
                                                     data_dir: Path) -> None:
    email = _address()
    refused = client.post(f"/api/projects/{world.project_a}/members", json={"email": email, "role": "owner"},
                          headers=world.h("admin"))
    assert refused.status_code == 403
    assert outbox_messages(data_dir, email) == []
    with db.service_session() as s:
        assert s.scalar(select(User).where(User.email == email)) is None


def test_invitation_names_inviter_and_project_and_lives_seven_days(client: TestClient, world: World,
                                                                   db: Database, data_dir: Path) -> None:
    with db.service_transaction() as s:
        admin = s.get(User, world.users["admin"])
        assert admin is not None
        admin.name = "Ada Admin"
    email = _address()
    invited = client.post(f"/api/projects/{world.project_a}/members", json={"email": email, "role": "lead"},
                          headers=world.h("admin"))
    assert invited.status_code == 201, invited.text
    [msg] = outbox_messages(data_dir, email)
    text = str(msg.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert str(msg["Subject"]) == "Ada Admin invited you to A on Kap"
    assert "as lead" in text
    assert "within 7 days" in text
    assert "Org One" in text
    assert str(msg["From"]).startswith("Org One via Kap")
    assert str(admin.email) in str(msg["Reply-To"])
    token = text.split("/auth/magic/")[1].split()[0]
    with db.service_session() as s:
        row = s.scalar(select(LoginToken).where(LoginToken.token_hash == hash_token(token)))
        assert row is not None
        assert row.purpose == "invite"
        assert row.invite_project_id == world.project_a
        assert timedelta(days=6, hours=23) < row.expires_at - utcnow() <= timedelta(days=7)
    assert client.post(f"/auth/magic/{token}", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("brk", ["\n", "\r\n", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"])
def test_an_invitation_from_a_project_named_with_a_line_break_is_mailed(client: TestClient, world: World,
                                                                        data_dir: Path, brk: str) -> None:
    """Any line break Python knows, in a project's name, becomes a space in the invitation's subject (the
    email package refuses a header with one; it was a 500)."""
    renamed = client.patch(f"/api/projects/{world.project_a}", json={"name": f"Payroll{brk}rollout"},
                           headers=world.h("owner"))
    assert renamed.status_code == 200, renamed.text
    address = f"new.hire.{uuid.uuid4().hex[:8]}@example.com"
    invited = client.post(f"/api/projects/{world.project_a}/members", json={"email": address},
                          headers=world.h("owner"))
    assert invited.status_code == 201, invited.text
    (message,) = outbox_messages(data_dir, address)
    assert message["Subject"].endswith("invited you to Payroll rollout on Kap")
