"""Helpers for stage and sign-off tests: documents, the outbox, links, a project context."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kap.core.db import Database
from kap.core.deps import ProjectContext, resolve_project
from kap.core.security import Identity
from kap.documents.models import Artifact
from tests.conftest import World, outbox_messages  # noqa: F401  (the stage tests import it from here)

HERE = Path(__file__).parent / "fixtures"
LINK = re.compile(r"http://testserver/signoff/([A-Za-z0-9_\-]+)")


def add_artifact(db: Database, org: uuid.UUID, project: uuid.UUID, filename: str, version: int = 1) -> Artifact:
    """Store a fixture file's metadata as a project document (its sha256 is the real one)."""
    data = (HERE / filename).read_bytes()
    art = Artifact(org_id=org, project_id=project, name=filename, media_type="text/plain", kind="text",
                   size=len(data), sha256=hashlib.sha256(data).hexdigest(), storage_key=f"test/{uuid.uuid4()}",
                   status="ready", version=version, ocr_pages=[], meta={})
    with db.service_transaction() as s:
        s.add(art)
    return art


def recipient() -> str:
    return f"sponsor-{uuid.uuid4().hex[:10]}@client.example.com"


def parts(msg: EmailMessage) -> tuple[str, str]:
    """The text and HTML bodies of a message."""
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert isinstance(text, EmailMessage)
    assert isinstance(html, EmailMessage)
    return str(text.get_content()), str(html.get_content())


def token_in(msg: EmailMessage) -> str:
    """The sign-off token carried by a message's text part."""
    found = LINK.search(parts(msg)[0])
    assert found, "no sign-off link in the message"
    return found.group(1)


def make_stage(client: TestClient, world: World, title: str = "Design", **extra: Any) -> dict[str, Any]:
    response = client.post("/api/stages", params={"project_id": str(world.project_a)},
                           json={"title": title, **extra}, headers=world.h("pm"))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def ask_signoff(client: TestClient, world: World, stage_id: str, email: str, **extra: Any) -> dict[str, Any]:
    response = client.post(f"/api/stages/{stage_id}/signoff-requests", params={"project_id": str(world.project_a)},
                           json={"email_to": email, **extra}, headers=world.h("pm"))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def stage_of(client: TestClient, world: World, stage_id: str) -> dict[str, Any]:
    response = client.get(f"/api/stages/{stage_id}", params={"project_id": str(world.project_a)},
                          headers=world.h("member"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@contextmanager
def project_context(db: Database, user: uuid.UUID, project: uuid.UUID) -> Iterator[ProjectContext]:
    """A caller's context on an app session, committed on success (as a request would)."""
    session = db.app_session(user)
    try:
        identity = Identity(via="dev", user_id=user, email=None)
        yield resolve_project(session, identity, project, ip="127.0.0.1", user_agent="pytest")
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@pytest.fixture
def pa(world: World) -> dict[str, str]:
    """The `project_id` query for project A."""
    return {"project_id": str(world.project_a)}
