"""Every mail speaks for the org: From "<Org> via Kap" and the org's name in the body."""

from __future__ import annotations

import uuid
from email.message import EmailMessage
from pathlib import Path

from fastapi.testclient import TestClient

from kap.core.db import Database
from kap.core.models import Org, User
from tests.conftest import World
from tests.stages.conftest import outbox_messages


def _brand(db: Database, world: World) -> str:
    name = f"Brightline {uuid.uuid4().hex[:6]}"
    with db.service_transaction() as s:
        org = s.get(Org, world.org1)
        assert org is not None
        org.display_name = name
    return name


def _text(msg: EmailMessage) -> str:
    body = msg.get_body(("plain",))
    assert isinstance(body, EmailMessage)
    return str(body.get_content())


def test_the_magic_link_speaks_for_the_users_org(client: TestClient, world: World, db: Database,
                                                 data_dir: Path) -> None:
    brand = _brand(db, world)
    with db.service_session() as s:
        user = s.get(User, world.users["member"])
        assert user is not None
        assert user.email
        email = user.email
    assert client.post("/api/auth/magic-link", json={"email": email}).status_code == 200
    [msg] = outbox_messages(data_dir, email)
    assert str(msg["From"]).startswith(f"{brand} via Kap")
    assert f"{brand}'s workspace on Kap" in _text(msg)


def test_the_digest_speaks_for_the_projects_org(client: TestClient, world: World, db: Database,
                                                data_dir: Path) -> None:
    brand = _brand(db, world)
    to = f"client-{uuid.uuid4().hex[:8]}@client.example.com"
    sent = client.post("/api/digest/send", params={"project_id": str(world.project_a)}, json={"to": to},
                       headers=world.h("pm"))
    assert sent.status_code == 200, sent.text
    [msg] = outbox_messages(data_dir, to)
    assert str(msg["From"]).startswith(f"{brand} via Kap")
    assert f"{brand} via Kap" in _text(msg)


def test_the_signoff_invitation_names_the_org_in_its_body(client: TestClient, world: World, db: Database,
                                                          data_dir: Path) -> None:
    brand = _brand(db, world)
    q = {"project_id": str(world.project_a)}
    stage = client.post("/api/stages", params=q, json={"title": "Design"}, headers=world.h("pm")).json()
    to = f"sponsor-{uuid.uuid4().hex[:8]}@client.example.com"
    asked = client.post(f"/api/stages/{stage['id']}/signoff-requests", params=q, json={"email_to": to},
                        headers=world.h("pm"))
    assert asked.status_code == 201, asked.text
    [msg] = outbox_messages(data_dir, to)
    assert str(msg["From"]).startswith(f"{brand} via Kap")
    assert f"({brand}) asks you to sign off" in _text(msg)
