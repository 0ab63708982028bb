"""Scheduled work of the stages domain."""

from __future__ import annotations

import logging

from kap.core.jobs import current_runtime, periodic
from kap.stages.reminders import notify_expired, send_reminders
from kap.stages.signoff import expire_overdue

log = logging.getLogger("kap.stages")


@periodic(cron="*/5 * * * *")
def expire_signoff_requests() -> None:
    """Mark overdue sign-off links expired, tell their requesters, and remind the signers of open ones."""
    runtime = current_runtime()
    count = expire_overdue(runtime.db)
    if count:
        log.info("expired %d sign-off request(s)", count)
    told = notify_expired(runtime)
    report = send_reminders(runtime)
    if told or report.sent or report.deferred:
        log.info("sign-off notices: %d expiry, %d reminder(s), deferred %s", told, len(report.sent),
                 report.deferred)
