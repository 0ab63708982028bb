"""Mailgun: the HTTP API against a loopback peer, and signed webhooks feeding the suppression list."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import time_machine
from fastapi.testclient import TestClient
from sqlalchemy import select

from kap.comms.scheduler import deliver, digest_tick
from kap.core.db import utcnow
from kap.core.mail import Mail, Mailer, MailgunTransport, MailSuppression, make_transport
from kap.core.models import AuditEvent, EmailLog
from kap.core.runtime import Runtime
from kap.core.settings import load_settings
from tests.comms.conftest import MailgunPeer, digest_log, sends
from tests.conftest import World

SIGNING_KEY = "whsec-" + "s" * 26


def mailgun_mailer(runtime: Runtime, peer: MailgunPeer, key: str | None = None) -> Mailer:
    return Mailer(runtime.settings, runtime.db, MailgunTransport(peer.domain, key or peer.api_key, peer.url))


def test_mailgun_send_posts_the_form_with_basic_auth(runtime: Runtime, mailgun_peer: MailgunPeer) -> None:
    mailer = mailgun_mailer(runtime, mailgun_peer)
    result = mailer.send(Mail(to="client@example.com", subject="Weekly digest", text="plain body",
                              html="<p>html body</p>", kind="digest",
                              unsubscribe_url="http://kap.example.com/unsubscribe/tok"))
    assert result.status == "queued"
    assert result.provider == "mailgun"
    assert result.provider_id
    form = mailgun_peer.received[-1]
    assert form["to"] == "client@example.com"
    assert form["subject"] == "Weekly digest"
    assert form["from"] == runtime.settings.kap_mail_from
    assert form["text"].strip() == "plain body"
    assert form["html"].strip() == "<p>html body</p>"
    assert form["h:List-Unsubscribe"] == "<http://kap.example.com/unsubscribe/tok>"
    assert form["h:List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    with runtime.db.service_session() as s:
        row = s.get(EmailLog, result.log_id)
    assert row is not None
    assert row.provider_id == result.provider_id
    assert row.status == "queued"


def test_mailgun_refusal_is_logged_as_failed(runtime: Runtime, mailgun_peer: MailgunPeer) -> None:
    mailer = mailgun_mailer(runtime, mailgun_peer, key="wrong-key")
    result = mailer.send(Mail(to="x@example.com", subject="s", text="t"))
    assert result.status == "failed"
    assert "401" in (result.error or "")
    assert mailgun_peer.refused == 1
    with runtime.db.service_session() as s:
        row = s.get(EmailLog, result.log_id)
    assert row is not None
    assert row.status == "failed"


def test_unreachable_mailgun_is_a_failed_send_not_a_crash(runtime: Runtime) -> None:
    transport = MailgunTransport("mg.example.com", "key", "http://127.0.0.1:9", timeout=2)
    result = Mailer(runtime.settings, runtime.db, transport).send(Mail(to="x@example.com", subject="s", text="t"))
    assert result.status == "failed"


def test_settings_choose_mailgun_with_the_eu_base_url() -> None:
    settings = load_settings(mailgun_domain="mg.example.com", mailgun_api_key="key-x",
                             mailgun_base_url="https://api.eu.mailgun.net")
    transport = make_transport(settings)
    assert isinstance(transport, MailgunTransport)
    assert transport.url == "https://api.eu.mailgun.net/v3/mg.example.com/messages"


def test_digest_tick_through_mailgun(runtime: Runtime, world: World, mailgun_peer: MailgunPeer) -> None:
    rt = dataclasses.replace(runtime, mailer=mailgun_mailer(runtime, mailgun_peer))
    with time_machine.travel(datetime(2027, 3, 1, 9, 0, tzinfo=UTC), tick=False):
        digest_tick(rt, utcnow(), projects=[world.project_a], dispatch=lambda sid: deliver(rt, sid))
    assert len(mailgun_peer.received) == 5
    assert all(f["h:List-Unsubscribe"].startswith("<http://testserver/unsubscribe/") for f in mailgun_peer.received)
    assert {s.status for s in sends(runtime.db, world.project_a)} == {"sent"}


def signed(event: dict[str, Any], *, key: str = SIGNING_KEY, token: str | None = None,
           timestamp: int | None = None) -> dict[str, Any]:
    ts, tok = str(timestamp or int(time.time())), token or uuid.uuid4().hex * 2
    signature = hmac.new(key.encode(), f"{ts}{tok}".encode(), hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": ts, "token": tok, "signature": signature}, "event-data": event}


def bounce(address: str, message_id: str = "none@mg") -> dict[str, Any]:
    return {"event": "failed", "severity": "permanent", "recipient": address,
            "message": {"headers": {"message-id": message_id}},
            "delivery-status": {"code": 550, "description": "mailbox does not exist"}}


Hook = Callable[[dict[str, Any]], Any]


def hook(make_client: Callable[..., TestClient]) -> Hook:
    client = make_client(mailgun_webhook_signing_key=SIGNING_KEY)
    return lambda body: client.post("/api/webhooks/mailgun", json=body)


def suppressed(runtime: Runtime, address: str) -> str | None:
    with runtime.db.service_session() as s:
        return s.scalar(select(MailSuppression.reason).where(MailSuppression.email == address))


def test_signed_bounce_suppresses_the_address(runtime: Runtime, make_client: Callable[..., TestClient],
                                             mailgun_peer: MailgunPeer) -> None:
    address = f"gone-{uuid.uuid4().hex[:8]}@example.com"
    mailer = mailgun_mailer(runtime, mailgun_peer)
    first = mailer.send(Mail(to=address, subject="s", text="t"))
    response = hook(make_client)(signed(bounce(address, first.provider_id or "")))
    assert response.status_code == 200, response.text
    assert suppressed(runtime, address) == "bounce"
    with runtime.db.service_session() as s:
        assert s.get(EmailLog, first.log_id).status == "bounced"  # type: ignore[union-attr]
    before = len(mailgun_peer.received)
    again = mailer.send(Mail(to=address.upper(), subject="s", text="t"))
    assert again.status == "suppressed"
    assert len(mailgun_peer.received) == before


def test_complaint_suppresses_and_delivery_updates_the_log(runtime: Runtime,
                                                          make_client: Callable[..., TestClient]) -> None:
    post = hook(make_client)
    sent = runtime.mailer.send(Mail(to="fine@example.com", subject="s", text="t"))
    event = {"event": "delivered", "recipient": "fine@example.com",
             "message": {"headers": {"message-id": sent.provider_id}}}
    assert post(signed(event)).status_code == 200
    with runtime.db.service_session() as s:
        assert s.get(EmailLog, sent.log_id).status == "delivered"  # type: ignore[union-attr]
    assert suppressed(runtime, "fine@example.com") is None
    angry = f"angry-{uuid.uuid4().hex[:8]}@example.com"
    assert post(signed({"event": "complained", "recipient": angry})).status_code == 200
    assert suppressed(runtime, angry) == "complaint"


def test_bad_unsigned_stale_and_replayed_webhooks_are_refused(runtime: Runtime,
                                                             make_client: Callable[..., TestClient]) -> None:
    post = hook(make_client)
    address = f"x-{uuid.uuid4().hex[:8]}@example.com"
    bad = post(signed(bounce(address), key="not-the-key"))
    assert bad.status_code == 403
    assert bad.json()["error"]["code"] == "invalid_signature"
    unsigned = post({"event-data": bounce(address)})
    assert unsigned.status_code == 403
    assert unsigned.json()["error"]["code"] == "unsigned"
    stale = post(signed(bounce(address), timestamp=int(time.time()) - 3600))
    assert stale.status_code == 403
    assert stale.json()["error"]["code"] == "stale_signature"
    assert suppressed(runtime, address) is None
    good = signed(bounce(address))
    assert post(good).status_code == 200
    replay = post(good)
    assert replay.status_code == 409
    assert replay.json()["error"]["code"] == "replayed"
    garbage = post({"signature": "nope"})
    assert garbage.status_code == 422


def test_webhooks_are_refused_when_no_signing_key_is_set(client: TestClient) -> None:
    response = client.post("/api/webhooks/mailgun", json=signed(bounce("a@example.com")))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "not_configured"


def test_bounced_external_signoff_recipient_is_flagged_to_the_pm(
        runtime: Runtime, world: World, make_client: Callable[..., TestClient], mailgun_peer: MailgunPeer) -> None:
    address = f"signer-{uuid.uuid4().hex[:8]}@example.com"
    sent = mailgun_mailer(runtime, mailgun_peer).send(Mail(to=address, subject="Please sign off", text="link",
                                                           kind="signoff", org_id=world.org1,
                                                           project_id=world.project_a))
    response = hook(make_client)(signed(bounce(address, sent.provider_id or "")))
    assert response.status_code == 200
    assert response.json()["flagged"] is True
    with runtime.db.service_session() as s:
        flagged = s.scalars(select(AuditEvent).where(AuditEvent.project_id == world.project_a,
                                                     AuditEvent.action == "comms.signoff_recipient_bounced")).all()
    assert len(flagged) == 1
    assert flagged[0].details["email"] == address
    alerts = digest_log(runtime.db, world.project_a, kind="alert")
    assert len(alerts) == 3  # the pm, admin and owner of project A
    assert all(address in a.subject for a in alerts)
    settings = make_client().get("/api/comms/settings", params={"project_id": str(world.project_a)},
                                 headers=world.h("pm"))
    assert settings.json()["flags"][0]["email"] == address
