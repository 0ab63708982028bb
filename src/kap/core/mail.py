"""Outgoing mail behind one interface: the outbox (default), SMTP or Mailgun's HTTP API.

Every message goes through one queue: `Mailer.queue(session, mail)` writes it, whole,
as an `email_log` row (status `pending`) in the caller's transaction, and it is handed
to the transport only after that transaction commits; a rollback (of the transaction,
or of the savepoint it was queued in) drops the row and the message unsent.
`Mailer.send(mail)` is the same queue on a transaction of its own, for work that has no
caller transaction (jobs, webhooks). The row then records what the transport did.

A process that dies between the commit and the hand-over leaves committed rows in
`pending` (or `sending`); the recovery pass (at start and every minute) sends those
whose process is gone, or that waited longer than KAP_RECOVERY_GRACE_SEC, after taking
each with one conditional UPDATE, so no two processes send the same row.

Addresses on the suppression list (hard bounces and complaints reported by Mailgun's
webhooks) are never mailed again: the attempt is logged with status `suppressed`. A
message with an unsubscribe URL carries the RFC 8058 one-click headers.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formataddr, make_msgid, parseaddr
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlparse

import httpx
from sqlalchemy import String, event, select, update
from sqlalchemy.orm import Mapped, Session, SessionTransaction, mapped_column

from kap.core.db import Base, Database, UTCDateTime, new_id, utcnow
from kap.core.models import EmailLog
from kap.core.owner import owner_tag
from kap.core.settings import Settings

log = logging.getLogger("kap.mail")
_QUEUE = "kap_mail_queue"
_LISTENING = "kap_mail_listening"
# Every break `str.splitlines` knows (the email package refuses a header holding any), and tabs.
_LINE_BREAKS = re.compile(r"[\r\n\t\v\f\x1c\x1d\x1e\x85\u2028\u2029]+")
UNSENT = ("pending", "sending")
# Headers the Mailgun form carries as fields of their own rather than as `h:` headers.
_MAILGUN_OWN_HEADERS = {"from", "to", "subject", "content-type", "content-transfer-encoding",
                        "mime-version", "message-id"}


class MailSuppression(Base):
    """An address Kap must not mail again (hard bounce or complaint); the table is created by comms."""

    __tablename__ = "mail_suppressions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    reason: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


@dataclass
class Attachment:
    """A file carried by a message."""

    filename: str
    content: bytes
    media_type: str = "application/octet-stream"


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
    unsubscribe_url: str | None = None
    sender_name: str | None = None
    reply_to: str | None = None
    attachments: list[Attachment] = field(default_factory=list)


@dataclass
class SendResult:
    status: str
    provider: str
    provider_id: str | None = None
    error: str | None = None
    path: str | None = None
    log_id: uuid.UUID | None = None


@dataclass
class QueuedMail:
    """A message waiting for its transaction to commit; `result` is set once it went out."""

    mail: Mail
    mailer: Mailer
    transaction: SessionTransaction
    message: EmailMessage
    log_id: uuid.UUID
    on_sent: Callable[[SendResult], None] | None = None
    result: SendResult | None = None


class Transport(Protocol):
    name: str

    def deliver(self, message: EmailMessage) -> SendResult: ...


def sender_for(mail: Mail, default: str) -> str:
    """The From header: "<Org> via Kap" on Kap's own address when the mail names its org."""
    if not mail.sender_name:
        return default
    address = parseaddr(default)[1] or default
    return formataddr((f"{one_line(mail.sender_name)} via Kap", address))


def build_message(mail: Mail, sender: str) -> EmailMessage:
    """Render a Mail as a MIME message with text and HTML alternatives and any attachments."""
    msg = EmailMessage()
    msg["From"] = sender_for(mail, sender)
    msg["To"] = mail.to
    if mail.reply_to:
        msg["Reply-To"] = one_line(mail.reply_to)
    msg["Subject"] = one_line(mail.subject)
    msg["Message-ID"] = make_msgid(domain="kap.local")
    for key, value in mail.headers.items():
        msg[key] = one_line(value)
    if mail.unsubscribe_url:
        msg["List-Unsubscribe"] = f"<{one_line(mail.unsubscribe_url)}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(mail.text)
    if mail.html:
        msg.add_alternative(mail.html, subtype="html")
    for item in mail.attachments:
        maintype, _, subtype = item.media_type.partition("/")
        msg.add_attachment(item.content, maintype=maintype, subtype=subtype or "octet-stream",
                           filename=item.filename)
    return msg


def one_line(value: str) -> str:
    """Collapse line breaks so a value can never add a header of its own."""
    return _LINE_BREAKS.sub(" ", value).strip()


def normalise_address(value: str) -> str:
    """The bare, lower-cased address of 'Name <a@b>' or 'a@b'."""
    return parseaddr(value)[1].strip().lower() or value.strip().lower()


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


class MailgunTransport:
    """Sends through Mailgun's HTTP API (`/v3/<domain>/messages`, US or EU base URL)."""

    name = "mailgun"

    def __init__(self, domain: str, api_key: str, base_url: str = "https://api.mailgun.net",
                 timeout: float = 20.0, client: httpx.Client | None = None) -> None:
        self.url = f"{base_url.rstrip('/')}/v3/{domain}/messages"
        self.auth = ("api", api_key)
        self.client = client or httpx.Client(timeout=timeout)

    def deliver(self, message: EmailMessage) -> SendResult:
        response = self.client.post(self.url, auth=self.auth, data=mailgun_form(message))
        if response.status_code >= 300:
            return SendResult(status="failed", provider=self.name,
                              error=f"HTTP {response.status_code}: {response.text[:300]}")
        try:
            provider_id = str(response.json().get("id", "")).strip("<>") or None
        except ValueError:
            provider_id = None
        return SendResult(status="queued", provider=self.name, provider_id=provider_id)


def mailgun_form(message: EmailMessage) -> dict[str, str]:
    """The form fields Mailgun's messages API takes for a MIME message."""
    form = {"from": str(message["From"]), "to": str(message["To"]), "subject": str(message["Subject"])}
    text_part = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    if isinstance(text_part, EmailMessage):
        form["text"] = str(text_part.get_content())
    if isinstance(html_part, EmailMessage):
        form["html"] = str(html_part.get_content())
    for key, value in message.items():
        if key.lower() not in _MAILGUN_OWN_HEADERS:
            form[f"h:{key}"] = str(value)
    form["h:X-Kap-Message-ID"] = str(message["Message-ID"]).strip("<>")
    return form


def suppression_of(session: Session, address: str) -> MailSuppression | None:
    """The suppression entry for an address, if it is on the list."""
    return session.scalar(select(MailSuppression).where(MailSuppression.email == normalise_address(address)))


# What must happen once a message of a kind went out, when the process that queued it is gone:
# kind -> follow-up(db, ref, result), where ref is the message's REF_HEADER (the object it is about).
FollowUp = Callable[[Database, str, SendResult], None]
_FOLLOW_UPS: dict[str, FollowUp] = {}
REF_HEADER = "X-Kap-Ref"


def follow_up(kind: str) -> Callable[[FollowUp], FollowUp]:
    """Register what the recovery pass runs after it sends a message of this kind that names a ref."""
    def register(fn: FollowUp) -> FollowUp:
        _FOLLOW_UPS[kind] = fn
        return fn
    return register


class Mailer:
    """Sends mail through the configured transport and logs every attempt."""

    def __init__(self, settings: Settings, db: Database, transport: Transport | None = None) -> None:
        self.settings = settings
        self.db = db
        self.transport = transport or make_transport(settings)
        # What went out but could not be written to its log row (a locked or unreachable database):
        # written again by this process's next recovery pass, and never sent twice meanwhile.
        self._unrecorded: dict[uuid.UUID, dict[str, object]] = {}
        self._unrecorded_lock = threading.Lock()

    def queue(self, session: Session, mail: Mail,
              on_sent: Callable[[SendResult], None] | None = None) -> QueuedMail:
        """Queue a message in the session's transaction: sent after it commits, dropped on rollback.

        `on_sent` runs after delivery with the result (in no transaction: open your own).
        """
        if not session.info.get(_LISTENING):
            session.info[_LISTENING] = True
            event.listen(session, "after_commit", _send_queued)
            event.listen(session, "after_soft_rollback", _drop_rolled_back)
        transaction = session.get_nested_transaction() or session.get_transaction() or session.begin()
        message = build_message(mail, self.settings.kap_mail_from)
        row = EmailLog(id=new_id(), org_id=mail.org_id, project_id=mail.project_id, kind=mail.kind,
                       recipient=mail.to, subject=mail.subject, provider=self.transport.name,
                       provider_id=str(message["Message-ID"]).strip("<>"), status="pending",
                       raw=bytes(message), owner=owner_tag(), claimed_at=utcnow())
        session.add(row)
        item = QueuedMail(mail=mail, mailer=self, transaction=transaction, message=message, log_id=row.id,
                          on_sent=on_sent)
        session.info.setdefault(_QUEUE, []).append(item)
        return item

    def send(self, mail: Mail) -> SendResult:
        """Send one message now, through the queue on a transaction of its own."""
        with self.db.service_transaction() as session:
            item = self.queue(session, mail)
        assert item.result is not None
        return item.result

    def _transmit(self, item: QueuedMail) -> None:
        if not self._take(item.log_id, "pending"):  # a recovery pass elsewhere already took it
            item.result = SendResult(status="taken", provider=self.transport.name, log_id=item.log_id)
            return
        result = self._hand_over(item.mail.to, item.message)
        result.log_id = item.log_id
        self._record(item.log_id, result)
        item.result = result
        if item.on_sent is not None:
            try:
                item.on_sent(result)
            except Exception:
                log.exception("follow-up of a sent message failed")

    def _take(self, log_id: uuid.UUID, *states: str, owner: str | None = None) -> bool:
        """Claim a committed, unsent message for this process (one conditional UPDATE)."""
        stmt = update(EmailLog).where(EmailLog.id == log_id, EmailLog.status.in_(states or UNSENT))
        if owner is not None:  # the recovery pass takes a row only from the owner it judged gone
            stmt = stmt.where(EmailLog.owner == owner)
        with self.db.service_transaction() as own:
            taken = own.execute(stmt.values(status="sending", owner=owner_tag(), claimed_at=utcnow())
                                .returning(EmailLog.id)).first()
        return taken is not None

    def _hand_over(self, to: str, message: EmailMessage) -> SendResult:
        return self._suppressed(to) or self._deliver(message)

    def _record(self, log_id: uuid.UUID, result: SendResult) -> None:
        values: dict[str, object] = {"status": result.status, "provider": result.provider, "error": result.error,
                                     "path": result.path, "raw": None}
        if result.provider_id:
            values["provider_id"] = result.provider_id
        if not self._write_record(log_id, values):
            with self._unrecorded_lock:
                self._unrecorded[log_id] = values

    def _write_record(self, log_id: uuid.UUID, values: dict[str, object]) -> bool:
        try:
            with self.db.service_transaction() as own:
                own.execute(update(EmailLog).where(EmailLog.id == log_id).values(**values))
        except Exception:  # the message went out; a lost log update must not hide that
            log.exception("could not record a sent message; the next recovery pass records it")
            return False
        return True

    def record_unrecorded(self) -> int:
        """Write the log rows of messages that went out while their row could not be written."""
        with self._unrecorded_lock:
            waiting = list(self._unrecorded.items())
        written = 0
        for log_id, values in waiting:
            if self._write_record(log_id, values):
                with self._unrecorded_lock:
                    self._unrecorded.pop(log_id, None)
                written += 1
        return written

    def send_unsent(self, abandoned: Callable[[str | None, datetime | None], bool]) -> int:
        """Send the committed messages no live process is sending (a crash between commit and send).

        First the rows of messages this process sent but could not record, so they are never sent twice.
        """
        self.record_unrecorded()
        with self._unrecorded_lock:
            unrecorded = set(self._unrecorded)
        with self.db.service_session() as session:
            rows = session.execute(select(EmailLog.id, EmailLog.owner, EmailLog.claimed_at, EmailLog.recipient,
                                          EmailLog.kind)
                                   .where(EmailLog.status.in_(UNSENT)).order_by(EmailLog.created_at)).all()
        sent = 0
        for log_id, owner, claimed_at, to, kind in rows:
            if log_id in unrecorded or not abandoned(owner, claimed_at) or not self._take(log_id, owner=owner or ""):
                continue
            with self.db.service_session() as session:
                raw = session.scalar(select(EmailLog.raw).where(EmailLog.id == log_id))
            if raw is None:
                continue
            message = BytesParser(policy=policy.default).parsebytes(raw)
            assert isinstance(message, EmailMessage)
            result = self._hand_over(to, message)
            result.log_id = log_id
            self._record(log_id, result)
            self._follow_up(kind, message.get(REF_HEADER), result)
            sent += 1
        if sent:
            log.warning("sent %d message(s) a stopped process had committed but not sent", sent)
        return sent

    def _follow_up(self, kind: str, ref: str | None, result: SendResult) -> None:
        fn = _FOLLOW_UPS.get(kind)
        if fn is None or not ref:
            return
        try:
            fn(self.db, str(ref), result)
        except Exception:
            log.exception("follow-up of a recovered message failed")

    def _suppressed(self, to: str) -> SendResult | None:
        with self.db.service_session() as session:
            entry = suppression_of(session, to)
            if entry is None:
                return None
            return SendResult(status="suppressed", provider=self.transport.name,
                              error=f"address suppressed: {entry.reason}")

    def _deliver(self, message: EmailMessage) -> SendResult:
        try:
            return self.transport.deliver(message)
        except (OSError, smtplib.SMTPException, httpx.HTTPError) as exc:
            return SendResult(status="failed", provider=self.transport.name, error=str(exc)[:500])


def _send_queued(session: Session) -> None:
    """After the outermost commit: hand every queued message to its transport."""
    if session.get_nested_transaction() is not None:
        return  # a savepoint was released: the transaction it belongs to may still roll back
    pending: list[QueuedMail] = session.info.pop(_QUEUE, None) or []
    for item in pending:
        item.mailer._transmit(item)


def _drop_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    """Forget the messages queued in a transaction (or savepoint) that rolled back."""
    pending: list[QueuedMail] = session.info.get(_QUEUE) or []
    keep = [item for item in pending if not _within(item.transaction, previous_transaction)]
    session.info[_QUEUE] = keep


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


def queued(session: Session) -> list[Mail]:
    """The messages waiting on this session's commit (for tests and diagnostics)."""
    return [item.mail for item in session.info.get(_QUEUE) or []]


def make_transport(settings: Settings) -> Transport:
    """Pick the transport: Mailgun when configured, else SMTP when KAP_SMTP_URL is set, else the outbox."""
    if settings.mailgun_domain and settings.mailgun_api_key:
        return MailgunTransport(settings.mailgun_domain, settings.mailgun_api_key, settings.mailgun_base_url)
    if settings.kap_smtp_url:
        return SmtpTransport(settings.kap_smtp_url)
    return OutboxTransport(settings.kap_data_dir.resolve() / "outbox")
