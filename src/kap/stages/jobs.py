"""Scheduled work of the stages domain."""

from __future__ import annotations

import logging

from kap.core.jobs import current_runtime, periodic
from kap.stages.signoff import expire_overdue

log = logging.getLogger("kap.stages")


@periodic(cron="*/5 * * * *")
def expire_signoff_requests() -> None:
    """Mark overdue sign-off links expired."""
    count = expire_overdue(current_runtime().db)
    if count:
        log.info("expired %d sign-off request(s)", count)
