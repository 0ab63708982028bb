"""Comms jobs: the periodic digest tick and one retried job per digest send."""

from __future__ import annotations

import logging
import uuid

from kap.comms import scheduler
from kap.core.jobs import current_runtime, periodic, task

log = logging.getLogger("kap.comms")


def _send_failed_for_good(args: tuple[object, ...], exc: BaseException) -> None:
    if args:
        scheduler.give_up(current_runtime().db, uuid.UUID(str(args[0])), f"{exc.__class__.__name__}: {exc}")


@task(retries=3, retry_delay=30, retry_backoff=2.0, on_failure=_send_failed_for_good)
def send_digest(send_id: str) -> None:
    """Deliver one claimed digest; a failed hand-off to the mail backend is retried with backoff."""
    scheduler.deliver(current_runtime(), uuid.UUID(send_id))


def enqueue_send(send_id: uuid.UUID) -> None:
    """Queue the delivery of a claimed digest."""
    send_digest(str(send_id))


@periodic(cron="*/5 * * * *")
def digest_tick() -> None:
    """Every five minutes: send the digests whose window has come (the tick is idempotent)."""
    report = scheduler.digest_tick(current_runtime())
    if report.planned or report.dispatched or report.deferred:
        log.info("digest tick: planned %d, dispatched %d, deferred %s", report.planned,
                 len(report.dispatched), report.deferred)
