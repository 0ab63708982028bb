"""Digests through SMTP against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import dataclasses
import email
import email.policy
from datetime import UTC, datetime
from typing import Any

import time_machine

from kap.comms.scheduler import deliver, digest_tick
from kap.core.db import utcnow
from kap.core.mail import Mail, Mailer, SmtpTransport
from kap.core.runtime import Runtime
from tests.comms.conftest import sends
from tests.conftest import World


def test_digest_tick_through_smtp(runtime: Runtime, world: World, smtp_server: tuple[str, Any]) -> None:
    url, inbox = smtp_server
    rt = dataclasses.replace(runtime, mailer=Mailer(runtime.settings, runtime.db, SmtpTransport(url, timeout=5)))
    with time_machine.travel(datetime(2027, 4, 5, 9, 0, tzinfo=UTC), tick=False):
        digest_tick(rt, utcnow(), projects=[world.project_a], dispatch=lambda sid: deliver(rt, sid))
    assert len(inbox.messages) == 5
    assert {s.status for s in sends(runtime.db, world.project_a)} == {"sent"}
    _, rcpts, raw = inbox.messages[0]
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["To"] == rcpts[0]
    assert str(message["List-Unsubscribe"]).strip().startswith("<http://testserver/unsubscribe/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.get_body(("html",)) is not None
    assert message.get_body(("plain",)) is not None


def test_header_injection_through_a_subject_is_neutralised(runtime: Runtime, smtp_server: tuple[str, Any]) -> None:
    url, inbox = smtp_server
    mailer = Mailer(runtime.settings, runtime.db, SmtpTransport(url, timeout=5))
    result = mailer.send(Mail(to="a@example.com", subject="Hi\r\nBcc: victim@example.com", text="t"))
    assert result.status == "sent"
    _, rcpts, raw = inbox.messages[-1]
    assert rcpts == ["a@example.com"]
    assert email.message_from_bytes(raw, policy=email.policy.default)["Bcc"] is None
