"""One-click unsubscribe (RFC 8058): headers on every digest, a confirm page, a POST that works."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from pathlib import Path

import time_machine
from fastapi.testclient import TestClient
from sqlalchemy import select

from kap.comms.models import Subscription
from kap.comms.scheduler import digest_tick
from kap.core.db import utcnow
from kap.core.models import AuditEvent
from kap.core.runtime import Runtime
from tests.comms.conftest import digest_log
from tests.conftest import World

MONDAY = datetime(2027, 2, 1, 9, 0, tzinfo=UTC)


def sent_message(runtime: Runtime, world: World) -> email.message.EmailMessage:
    with time_machine.travel(MONDAY, tick=False):
        digest_tick(runtime, utcnow(), projects=[world.project_a])
    row = digest_log(runtime.db, world.project_a)[0]
    raw = Path(row.path or "").read_bytes()
    return email.message_from_bytes(raw, policy=email.policy.default)


def token_of(message: email.message.EmailMessage) -> str:
    header = str(message["List-Unsubscribe"]).strip()
    match = re.fullmatch(r"<http://testserver/unsubscribe/([A-Za-z0-9_-]+)>", header)
    assert match, header
    return match.group(1)


def test_digest_carries_one_click_headers(bound: Runtime, world: World) -> None:
    message = sent_message(bound, world)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    token = token_of(message)
    body = message.get_body(("plain",))
    assert body is not None
    assert f"/unsubscribe/{token}" in body.get_content()


def test_get_shows_a_confirm_page_and_changes_nothing(bound: Runtime, world: World, client: TestClient) -> None:
    token = token_of(sent_message(bound, world))
    page = client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert "Stop receiving the weekly digest of A?" in page.text
    assert 'method="post"' in page.text
    with bound.db.service_session() as s:
        assert s.scalar(select(Subscription.subscribed).where(Subscription.token == token)) is True


def test_one_click_post_unsubscribes_and_the_next_digest_skips_them(bound: Runtime, world: World,
                                                                    client: TestClient) -> None:
    message = sent_message(bound, world)
    token, recipient = token_of(message), str(message["To"])
    response = client.post(f"/unsubscribe/{token}", content="List-Unsubscribe=One-Click",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200
    assert "Unsubscribed" in response.text
    again = client.post(f"/unsubscribe/{token}", content="List-Unsubscribe=One-Click",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert again.status_code == 200
    with bound.db.service_session() as s:
        row = s.scalar(select(Subscription).where(Subscription.token == token))
        assert row is not None
        assert row.subscribed is False
        assert row.category == "digest"
        audits = s.scalars(select(AuditEvent).where(AuditEvent.project_id == world.project_a,
                                                    AuditEvent.action == "comms.unsubscribed")).all()
        assert len(audits) == 1
    with time_machine.travel(datetime(2027, 2, 8, 9, 0, tzinfo=UTC), tick=False):
        digest_tick(bound, utcnow(), projects=[world.project_a])
    week_two = [r for r in digest_log(bound.db, world.project_a) if r.created_at >= datetime(2027, 2, 8, tzinfo=UTC)]
    assert len(week_two) == 4
    assert recipient not in {r.recipient for r in week_two}


def test_member_sees_the_unsubscribe_in_their_settings(bound: Runtime, world: World, client: TestClient) -> None:
    message = sent_message(bound, world)
    client.post(f"/unsubscribe/{token_of(message)}")
    with bound.db.service_session() as s:
        row = s.scalar(select(Subscription).where(Subscription.token == token_of(message)))
        assert row is not None
        assert row.user_id is not None
        who = next(name for name, uid in world.users.items() if uid == row.user_id)
    mine = client.get("/api/subscriptions", params={"project_id": str(world.project_a)}, headers=world.h(who))
    assert mine.json()["mine"]["digest"] is False


def test_unknown_token_is_a_404_page(client: TestClient) -> None:
    assert client.get("/unsubscribe/not-a-real-token").status_code == 404
    assert client.post("/unsubscribe/not-a-real-token").status_code == 404
