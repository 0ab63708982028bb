"""A message committed but not sent when its process died goes out on the next recovery pass, once."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import event, select

from kap.core.db import Database, utcnow
from kap.core.mail import Mail, build_message
from kap.core.models import AuditEvent, EmailLog
from kap.core.owner import owner_tag
from kap.core.recovery import run_recovery
from kap.core.runtime import Runtime
from kap.stages.models import SignoffRequest
from tests.comms.conftest import _Inbox
from tests.conftest import free_port, outbox_messages
from tests.robustness.conftest import LiveServer
from tests.robustness.test_crash import wait_for


def _dead_owner() -> str:
    """The owner tag of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return owner_tag().rsplit("x", 1)[0] + f"x{proc.pid}"


def _committed_unsent(db: Database, runtime: Runtime, to: str, owner: str) -> uuid.UUID:
    """The row a process leaves when it dies right after its commit, before it hands the message over."""
    message = build_message(Mail(to=to, subject="Committed before the crash", text="Still delivered"),
                            runtime.settings.kap_mail_from)
    row = EmailLog(id=uuid.uuid4(), kind="system", recipient=to, subject="Committed before the crash",
                   provider="outbox",
                   provider_id=str(message["Message-ID"]).strip("<>"), status="pending", raw=bytes(message),
                   owner=owner, claimed_at=utcnow())
    row_id = row.id
    with db.service_transaction() as s:
        s.add(row)
    return row_id


def test_a_dead_process_committed_message_is_sent_once_by_the_recovery_pass(
        runtime: Runtime, db: Database, data_dir: Path) -> None:
    orphan, fresh = (f"r-{uuid.uuid4().hex[:10]}@client.example.com" for _ in range(2))
    orphan_id = _committed_unsent(db, runtime, orphan, _dead_owner())
    live_id = _committed_unsent(db, runtime, fresh, owner_tag())  # this process is alive and may still send it

    assert run_recovery(runtime)["unsent_mail"] >= 1
    [msg] = outbox_messages(data_dir, orphan)
    assert "Still delivered" in str(msg.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert outbox_messages(data_dir, fresh) == []
    with db.service_session() as s:
        sent = s.get(EmailLog, orphan_id)
        waiting = s.get(EmailLog, live_id)
        assert sent is not None
        assert waiting is not None
        assert (sent.status, sent.raw, sent.path is not None) == ("saved", None, True)
        assert waiting.status == "pending"

    run_recovery(runtime)
    assert len(outbox_messages(data_dir, orphan)) == 1  # never twice
    with db.service_transaction() as s:
        s.delete(s.get(EmailLog, live_id))


def test_a_queued_message_is_a_pending_row_until_its_commit_then_sent(
        runtime: Runtime, db: Database, data_dir: Path) -> None:
    to = f"q-{uuid.uuid4().hex[:10]}@client.example.com"
    with db.service_transaction() as session:
        item = runtime.mailer.queue(session, Mail(to=to, subject="Queued", text="Queued"))
        session.flush()
        row = session.get(EmailLog, item.log_id)
        assert row is not None
        assert row.status == "pending"
        assert row.raw
    with db.service_session() as s:
        done = s.get(EmailLog, item.log_id)
        assert done is not None
        assert (done.status, done.raw) == ("saved", None)
    assert len(outbox_messages(data_dir, to)) == 1


class _Silent:
    """An SMTP peer that accepts connections and never answers: a send through it hangs."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[LiveServer]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KAP_", "DEV_AUTH", "MAILGUN_"))}
    env = {**base, "KAP_DATA_DIR": str(tmp_path), "DEV_AUTH": "1", "KAP_LOG_LEVEL": "WARNING",
           "KAP_DATABASE_URL": database_url, "RATE_LIMIT_MAX": "100000", "KAP_EMBEDDINGS": "off"}
    live = LiveServer(tmp_path, env)
    env["KAP_PUBLIC_URL"] = live.url
    try:
        yield live
    finally:
        live.stop()


@pytest.mark.slow
def test_kill_9_between_commit_and_send_loses_no_mail(server: LiveServer, db: Database) -> None:
    silent = _Silent()
    server.env["KAP_SMTP_URL"] = f"smtp://127.0.0.1:{silent.port}"
    server.start()
    headers = {"X-Dev-User": str(uuid.uuid4()), "X-Dev-Org": str(uuid.uuid4()), "X-Dev-Role": "owner"}
    api = httpx.Client(base_url=server.url, headers=headers, timeout=60)
    q = {"project_id": api.post("/api/projects", json={"name": "Crash mail"}).json()["id"]}
    stage = api.post("/api/stages", params=q, json={"title": "Design"}).json()["id"]
    signer = f"dana-{uuid.uuid4().hex[:8]}@client.example.com"

    def ask() -> None:
        try:
            api.post(f"/api/stages/{stage}/signoff-requests", params=q, json={"email_to": signer}, timeout=60)
        except httpx.HTTPError:
            pass  # the server dies under the request, as intended
    threading.Thread(target=ask, daemon=True).start()

    def row() -> tuple[str, bool] | None:
        """The mail's log row: its status and whether the message is still kept."""
        with db.service_session() as s:
            found = s.execute(select(EmailLog.status, EmailLog.raw.is_not(None))
                              .where(EmailLog.recipient == signer)).first()
            return (found[0], bool(found[1])) if found else None
    assert wait_for(lambda: row() == ("sending", True), 30)  # committed, being handed over
    assert wait_for(lambda: silent.held, 10)  # the SMTP connection is open, no greeting comes
    server.kill()
    silent.close()
    assert row() == ("sending", True)

    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        server.env["KAP_SMTP_URL"] = f"smtp://127.0.0.1:{port}"
        started = time.monotonic()
        server.start()
        assert wait_for(lambda: inbox.messages, 30)
        elapsed = time.monotonic() - started
    finally:
        controller.stop()
    [(_, rcpts, raw)] = inbox.messages
    assert rcpts == [signer]
    text = BytesParser(policy=policy.default).parsebytes(raw).get_body(("plain",))
    assert isinstance(text, EmailMessage)
    token = re.search(r"/signoff/([A-Za-z0-9_\-]+)", str(text.get_content()))
    assert token
    assert httpx.get(f"{server.url}/signoff/{token.group(1)}").status_code == 200  # the link is real
    assert row() == ("sent", False)
    with db.service_session() as s:  # the stage page shows the mail as sent, as after a live send
        request = s.scalars(select(SignoffRequest).where(SignoffRequest.recipient_email == signer)).one()
        emailed = s.scalars(select(AuditEvent.details).where(AuditEvent.action == "signoff.emailed",
                                                             AuditEvent.target_id == str(request.id))).all()
    assert request.email_status == "sent"
    assert [d["status"] for d in emailed] == ["sent"]
    print(f"recovered mail sent {elapsed:.1f}s after restart")  # noqa: T201


def test_a_sent_message_whose_log_row_could_not_be_written_is_recorded_later_and_never_sent_twice(
        runtime: Runtime, db: Database, data_dir: Path) -> None:
    to = f"locked-{uuid.uuid4().hex[:10]}@client.example.com"
    refused: list[str] = []

    def locked(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE EMAIL_LOG") and "path" in statement:
            refused.append(statement)
            raise RuntimeError("database is locked")  # what SQLite says past its busy timeout

    event.listen(db.service_engine, "before_cursor_execute", locked)
    try:
        result = runtime.mailer.send(Mail(to=to, subject="Sent while the log was locked", text="Once"))
    finally:
        event.remove(db.service_engine, "before_cursor_execute", locked)
    assert refused
    assert result.status == "saved"
    assert len(outbox_messages(data_dir, to)) == 1
    with db.service_session() as s:
        row = s.scalars(select(EmailLog).where(EmailLog.recipient == to)).one()
        assert row.status == "sending"  # the message went out; its row could not say so yet

    # Even judged abandoned (every owner gone, every wait too long), it is recorded, not sent again.
    sent = runtime.mailer.send_unsent(lambda owner, claimed_at: True)
    assert sent == 0
    assert len(outbox_messages(data_dir, to)) == 1
    with db.service_session() as s:
        row = s.scalars(select(EmailLog).where(EmailLog.recipient == to)).one()
        assert (row.status, row.raw, row.path is not None) == ("saved", None, True)
    assert runtime.mailer.record_unrecorded() == 0
