"""Digest build cost at scale, the tick over many projects, and mail throughput.

Digests: 1,000 projects with 20 recipients each (5 documents per project). The figure
that matters is the ratio of the measured total to "build one project and multiply":
close to 1.0 means the cost grows linearly with projects. The tick figure is one
scheduler pass that plans and claims every send (delivery stubbed out).
Mail: messages per second through the outbox and through SMTP to aiosmtpd on loopback.
Sizes can be lowered with KAP_BENCH_PROJECTS / KAP_BENCH_RECIPIENTS.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import insert

from bench.common import median, out, postgres_url, sqlite_url
from kap.comms.digest import Period, SectionCache, build_digest
from kap.comms.scheduler import digest_tick
from kap.comms.service import digest_recipients
from kap.core.db import utcnow
from kap.core.mail import Mail, Mailer, OutboxTransport, SmtpTransport
from kap.core.migrate import migrate
from kap.core.models import Org, Project, ProjectMember, User
from kap.core.runtime import Runtime
from kap.core.scope import trusted_scope
from kap.core.settings import load_settings
from kap.documents.models import Artifact

PROJECTS = int(os.environ.get("KAP_BENCH_PROJECTS", "1000"))
RECIPIENTS = int(os.environ.get("KAP_BENCH_RECIPIENTS", "20"))
DOCS = 5
MAILS = 300
SAMPLE = 50


def _runtime(url: str, data_dir: Path) -> Runtime:
    settings = load_settings(kap_database_url=url, kap_data_dir=data_dir, kap_env="test",
                             kap_public_url="http://bench")
    migrate(settings)
    return Runtime.build(settings)


def _seed(runtime: Runtime) -> list[uuid.UUID]:
    """Create the projects, their members and a few documents in bulk."""
    org, now = uuid.uuid4(), utcnow() - timedelta(days=30)
    projects = [uuid.uuid4() for _ in range(PROJECTS)]
    users = [{"id": uuid.uuid4(), "email": f"u{i}@bench.example", "created_at": now}
             for i in range(PROJECTS * RECIPIENTS)]
    members = [{"id": uuid.uuid4(), "org_id": org, "project_id": pid, "user_id": users[p * RECIPIENTS + r]["id"],
                "role": "member", "created_at": now} for p, pid in enumerate(projects) for r in range(RECIPIENTS)]
    docs = [{"id": uuid.uuid4(), "org_id": org, "project_id": pid, "name": f"doc-{d}.pdf",
             "media_type": "application/pdf", "kind": "pdf", "size": 1, "sha256": "0" * 64, "storage_key": "k",
             "status": "ready", "page_count": 1, "chunk_count": 1, "ocr_pages": [], "version": 1,
             "shareable": d % 2 == 0, "meta": {},
             "created_at": utcnow() - timedelta(days=1), "updated_at": utcnow() - timedelta(days=1)}
            for pid in projects for d in range(DOCS)]
    with runtime.db.service_transaction() as s:
        s.execute(insert(Org), [{"id": org, "name": "Bench", "created_at": now}])
        s.execute(insert(Project), [{"id": pid, "org_id": org, "name": f"P{i}", "created_at": now, "updated_at": now}
                                    for i, pid in enumerate(projects)])
        s.execute(insert(User), users)
        s.execute(insert(ProjectMember), members)
        s.execute(insert(Artifact), docs)
    return projects


def _build_project(runtime: Runtime, project_id: uuid.UUID, period: Period, cache: SectionCache | None) -> None:
    with runtime.db.service_session() as session:
        scope = trusted_scope(session, project_id, purpose="bench")
        assert scope is not None
        for recipient in digest_recipients(session, scope):
            build_digest(session, scope, period, recipient, base_url="http://bench", cache=cache,
                         unsubscribe_url=f"http://bench/unsubscribe/{recipient.key}")


def _timed(runtime: Runtime, projects: list[uuid.UUID], period: Period, shared: bool) -> float:
    cache = SectionCache() if shared else None
    t0 = time.perf_counter()
    for pid in projects:
        _build_project(runtime, pid, period, cache)
    return time.perf_counter() - t0


def _bench_digests(label: str, runtime: Runtime) -> None:
    t0 = time.perf_counter()
    projects = _seed(runtime)
    out(f"{label}: seeded {PROJECTS} projects x {RECIPIENTS} recipients in {time.perf_counter() - t0:.1f} s")
    period = Period(utcnow() - timedelta(days=7), utcnow())
    sample = projects[:SAMPLE]
    slow = _timed(runtime, sample, period, shared=False)
    out(f"{label}: sections built per recipient: {slow / (len(sample) * RECIPIENTS) * 1000:.2f} ms per digest "
        f"({len(sample)} projects sampled)")
    spread = projects[:: max(1, len(projects) // 20)]
    one = median([_timed(runtime, [pid], period, shared=True) for pid in spread])
    total = _timed(runtime, projects, period, shared=True)
    per = total / (PROJECTS * RECIPIENTS) * 1000
    out(f"{label}: sections shared per project and view (what the tick does): one project ({RECIPIENTS} digests) "
        f"{one * 1000:.1f} ms; all {PROJECTS} projects {total:.1f} s ({per:.2f} ms per digest); "
        f"ratio to median one x {PROJECTS}: {total / (one * PROJECTS):.2f}")
    _bench_tick(label, runtime)


def _bench_tick(label: str, runtime: Runtime) -> None:
    claimed: list[Any] = []
    now = utcnow() + timedelta(days=8)
    t0 = time.perf_counter()
    report = digest_tick(runtime, now, dispatch=claimed.append)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    digest_tick(runtime, now, dispatch=claimed.append)
    again = time.perf_counter() - t0
    out(f"{label}: one tick planned {report.planned} sends and claimed {len(report.dispatched)} in {first:.1f} s "
        f"(delivery stubbed); an idle repeat tick took {again * 1000:.0f} ms")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Sink:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        return "250 OK"


def _rate(mailer: Mailer) -> float:
    mail = Mail(to="someone@bench.example", subject="Digest", text="body " * 200, html="<p>body</p>" * 200,
                kind="bench", unsubscribe_url="http://bench/unsubscribe/x")
    t0 = time.perf_counter()
    for _ in range(MAILS):
        mailer.send(mail)
    return MAILS / (time.perf_counter() - t0)


def _bench_mail(runtime: Runtime, folder: Path) -> None:
    outbox = Mailer(runtime.settings, runtime.db, OutboxTransport(folder / "outbox"))
    out(f"mail: outbox {_rate(outbox):.0f} emails/s (each logged in email_log)")
    port = _free_port()
    controller = Controller(_Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        smtp = Mailer(runtime.settings, runtime.db, SmtpTransport(f"smtp://127.0.0.1:{port}"))
        out(f"mail: SMTP to aiosmtpd on loopback {_rate(smtp):.0f} emails/s (one connection per message)")
    finally:
        controller.stop()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with sqlite_url(folder) as url:
            runtime = _runtime(url, folder)
            try:
                _bench_digests("sqlite", runtime)
                _bench_mail(runtime, folder)
            finally:
                runtime.close()
        try:
            with postgres_url() as url:
                runtime = _runtime(url, folder / "pg")
                try:
                    _bench_digests("postgresql", runtime)
                finally:
                    runtime.close()
        except OSError as exc:
            out(f"postgresql: skipped ({exc.__class__.__name__})")


if __name__ == "__main__":
    main()
