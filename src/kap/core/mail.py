"""Outgoing mail behind one interface: the outbox (default) or SMTP."""

from __future__ import annotations

import smtplib
import ssl
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlparse

from kap.core.db import Database
from kap.core.models import EmailLog
from kap.core.settings import Settings


@dataclass
class Mail:
    """One message to one recipient, with text and optional HTML bodies."""

    to: str
    subject: str
    text: str
    html: str | None = None
    kind: str = "system"
    org_id: uuid.UUID | None = None
    project_id: uuid.UUID | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class SendResult:
    status: str
    provider: str
    provider_id: str | None = None
    error: str | None = None
    path: str | None = None
    log_id: uuid.UUID | None = None


class Transport(Protocol):
    name: str

    def deliver(self, message: EmailMessage) -> SendResult: ...


def build_message(mail: Mail, sender: str) -> EmailMessage:
    """Render a Mail as a MIME message with text and HTML alternatives."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = mail.to
    msg["Subject"] = mail.subject
    msg["Message-ID"] = make_msgid(domain="kap.local")
    for key, value in mail.headers.items():
        msg[key] = value
    msg.set_content(mail.text)
    if mail.html:
        msg.add_alternative(mail.html, subtype="html")
    return msg


class OutboxTransport:
    """Saves each message as an .eml file under the data folder; sends nothing."""

    name = "outbox"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def deliver(self, message: EmailMessage) -> SendResult:
        self.folder.mkdir(parents=True, exist_ok=True)
        msg_id = str(message["Message-ID"]).strip("<>")
        path = self.folder / f"{uuid.uuid4()}.eml"
        path.write_bytes(bytes(message))
        return SendResult(status="saved", provider=self.name, provider_id=msg_id, path=str(path))


class SmtpTransport:
    """Sends through an SMTP server: smtp://user:pass@host:port, smtps:// or ?starttls=1."""

    name = "smtp"

    def __init__(self, url: str, timeout: float = 20.0) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("smtp", "smtps"):
            raise ValueError("KAP_SMTP_URL must start with smtp:// or smtps://")
        self.host = parsed.hostname or "localhost"
        self.implicit_tls = parsed.scheme == "smtps"
        self.port = parsed.port or (465 if self.implicit_tls else 25)
        self.username = unquote(parsed.username) if parsed.username else None
        self.password = unquote(parsed.password) if parsed.password else None
        query = parse_qs(parsed.query)
        self.starttls = query.get("starttls", ["0"])[0] in ("1", "true", "yes")
        self.timeout = timeout

    def deliver(self, message: EmailMessage) -> SendResult:
        client: smtplib.SMTP
        if self.implicit_tls:
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                      context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with client:
            if self.starttls:
                client.starttls(context=ssl.create_default_context())
            if self.username:
                client.login(self.username, self.password or "")
            client.send_message(message)
        return SendResult(status="sent", provider=self.name,
                          provider_id=str(message["Message-ID"]).strip("<>"))


class Mailer:
    """Sends mail through the configured transport and logs every attempt."""

    def __init__(self, settings: Settings, db: Database, transport: Transport | None = None) -> None:
        self.settings = settings
        self.db = db
        self.transport = transport or make_transport(settings)

    def send(self, mail: Mail) -> SendResult:
        """Deliver one message; failures are logged and returned, not raised."""
        message = build_message(mail, self.settings.kap_mail_from)
        try:
            result = self.transport.deliver(message)
        except (OSError, smtplib.SMTPException) as exc:
            result = SendResult(status="failed", provider=self.transport.name, error=str(exc)[:500])
        with self.db.service_transaction() as session:
            row = EmailLog(org_id=mail.org_id, project_id=mail.project_id, kind=mail.kind,
                           recipient=mail.to, subject=mail.subject, provider=result.provider,
                           provider_id=result.provider_id, status=result.status, error=result.error,
                           path=result.path)
            session.add(row)
            session.flush()
            result.log_id = row.id
        return result


def make_transport(settings: Settings) -> Transport:
    """Pick the transport from configuration: SMTP when KAP_SMTP_URL is set, else the outbox."""
    if settings.kap_smtp_url:
        return SmtpTransport(settings.kap_smtp_url)
    return OutboxTransport(settings.kap_data_dir.resolve() / "outbox")
