"""The whole flow with mail going through a real SMTP server on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient

from kap.core.db import Database
from tests.conftest import World, free_port
from tests.stages.conftest import add_artifact, parts, recipient, token_in


class Inbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = BytesParser(policy=policy.default).parsebytes(envelope.content)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if str(m["To"]) == address]




@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def test_flow_with_a_real_smtp_server(make_client: Callable[..., TestClient], smtp: tuple[Inbox, int],
                                      world: World, db: Database) -> None:
    inbox, port = smtp
    client = make_client(kap_smtp_url=f"smtp://127.0.0.1:{port}")
    pa = {"project_id": str(world.project_a)}
    doc = add_artifact(db, world.org1, world.project_a, "Test strategy.txt")
    stage = client.post("/api/stages", params=pa, json={"title": "Build", "artifact_ids": [str(doc.id)]},
                        headers=world.h("pm")).json()
    email = recipient()
    asked = client.post(f"/api/stages/{stage['id']}/signoff-requests", params=pa,
                        json={"email_to": email, "name": "Dana"}, headers=world.h("pm"))
    assert asked.status_code == 201, asked.text
    assert asked.json()["email"] == {"status": "queued", "provider": None, "error": None}
    listed = client.get(f"/api/stages/{stage['id']}/signoff-requests", params=pa, headers=world.h("pm")).json()
    assert listed["requests"][0]["email_status"] == "sent"
    [msg] = inbox.to(email)
    text, html = parts(msg)
    assert "Build" in text
    assert "Review and decide" in html
    token = token_in(msg)
    assert client.get(f"/signoff/{token}").status_code == 200
    done = client.post(f"/signoff/{token}", data={"decision": "approve", "name": "Dana", "note": "Go"})
    assert done.status_code == 200
    got = client.get(f"/api/stages/{stage['id']}", params=pa, headers=world.h("member")).json()
    assert got["status"] == "signed_off"
    cert = client.get(f"/api/stages/{stage['id']}/signoff-certificate", params=pa, headers=world.h("member"))
    assert doc.sha256 in cert.text


def test_smtp_failure_is_reported_not_raised(make_client: Callable[..., TestClient], world: World) -> None:
    client = make_client(kap_smtp_url=f"smtp://127.0.0.1:{free_port()}")
    pa = {"project_id": str(world.project_a)}
    stage = client.post("/api/stages", params=pa, json={"title": "Deploy"}, headers=world.h("pm")).json()
    asked = client.post(f"/api/stages/{stage['id']}/signoff-requests", params=pa,
                        json={"email_to": recipient()}, headers=world.h("pm"))
    assert asked.status_code == 201
    assert asked.json()["email"]["status"] == "queued"
    listed = client.get(f"/api/stages/{stage['id']}/signoff-requests", params=pa, headers=world.h("pm")).json()
    assert listed["requests"][0]["email_status"] == "failed"
    resent = client.post(f"/api/stages/{stage['id']}/signoff-requests/{asked.json()['request_id']}/resend",
                         params=pa, headers=world.h("pm"))
    assert resent.status_code == 201
