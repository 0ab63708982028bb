"""Comms fixtures: documents and stage events to digest, a bound job runtime, loopback mail peers."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from kap.comms.models import CommsSettings, DigestSend
from kap.comms.schedule import Rules
from kap.core import jobs
from kap.core.db import Database, utcnow
from kap.core.models import EmailLog, Project
from kap.core.runtime import Runtime
from kap.documents.models import Artifact
from tests.conftest import free_port


@pytest.fixture
def bound(runtime: Runtime) -> Iterator[Runtime]:
    """The session runtime bound to the job queue (immediate mode under KAP_ENV=test)."""
    jobs.bind_runtime(runtime)
    yield runtime
    jobs.unbind_runtime(runtime)


def add_artifact(db: Database, project_id: uuid.UUID, name: str, *, status: str = "ready",
                 shareable: bool = False, version: int = 1, created_at: datetime | None = None,
                 updated_at: datetime | None = None) -> uuid.UUID:
    """Store an artifact row for a project (no file: the digest reads rows only)."""
    aid = uuid.uuid4()
    with db.service_transaction() as s:
        org_id = s.get(Project, project_id).org_id  # type: ignore[union-attr]
        stamp = created_at or utcnow()
        s.add(Artifact(id=aid, org_id=org_id, project_id=project_id, name=name, media_type="text/plain",
                       kind="text", size=1, sha256=hashlib.sha256(name.encode()).hexdigest(),
                       storage_key=f"k/{aid}", status=status, page_count=1, chunk_count=1, ocr_pages=[],
                       version=version, shareable=shareable, meta={}, created_at=stamp,
                       updated_at=updated_at or stamp))
    return aid


def set_rules(db: Database, project_id: uuid.UUID, **values: Any) -> None:
    """Save comms settings for a project straight through the service engine."""
    with db.service_transaction() as s:
        row = s.scalar(select(CommsSettings).where(CommsSettings.project_id == project_id))
        if row is None:
            org_id = s.get(Project, project_id).org_id  # type: ignore[union-attr]
            row = CommsSettings(org_id=org_id, project_id=project_id, **vars(Rules()))
            s.add(row)
        for key, value in values.items():
            setattr(row, key, value)


def digest_log(db: Database, project_id: uuid.UUID, kind: str = "digest") -> list[EmailLog]:
    with db.service_session() as s:
        return list(s.scalars(select(EmailLog).where(EmailLog.project_id == project_id, EmailLog.kind == kind)
                              .order_by(EmailLog.created_at)))


def sends(db: Database, project_id: uuid.UUID) -> list[DigestSend]:
    with db.service_session() as s:
        return list(s.scalars(select(DigestSend).where(DigestSend.project_id == project_id)
                              .order_by(DigestSend.email)))


def count_sends(db: Database, project_id: uuid.UUID) -> int:
    with db.service_session() as s:
        return int(s.scalar(select(func.count()).select_from(DigestSend)
                            .where(DigestSend.project_id == project_id)) or 0)




@dataclass
class MailgunPeer:
    """A loopback stand-in for Mailgun's messages API that checks auth and the form."""

    domain: str
    api_key: str
    url: str = ""
    received: list[dict[str, str]] = field(default_factory=list)
    refused: int = 0


class _MailgunHandler(BaseHTTPRequestHandler):
    peer: MailgunPeer

    def do_POST(self) -> None:  # noqa: N802  (http.server's naming)
        peer = self.peer
        expected = "Basic " + base64.b64encode(f"api:{peer.api_key}".encode()).decode()
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length).decode()
        if self.headers.get("Authorization") != expected or self.path != f"/v3/{peer.domain}/messages":
            peer.refused += 1
            return self._answer(401, {"message": "Invalid private key"})
        if not self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return self._answer(400, {"message": "form expected"})
        form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
        missing = [f for f in ("from", "to", "subject", "text") if not form.get(f)]
        if missing:
            return self._answer(400, {"message": f"missing {missing}"})
        peer.received.append(form)
        self._answer(200, {"id": f"<{uuid.uuid4().hex}@{peer.domain}>", "message": "Queued. Thank you."})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def mailgun_peer() -> Iterator[MailgunPeer]:
    peer = MailgunPeer(domain="mg.example.test", api_key="key-" + "k" * 24)
    handler = type("Handler", (_MailgunHandler,), {"peer": peer})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    peer.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield peer
    server.shutdown()
    server.server_close()


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[str, _Inbox]]:
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield f"smtp://127.0.0.1:{port}", inbox
    controller.stop()
