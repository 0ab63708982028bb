"""The nightly backup: every active project once a day on the service engine, then retention."""

from __future__ import annotations

import logging
from typing import Any

from kap.backups.writer import NIGHTLY_CRON, run_nightly
from kap.core.jobs import current_runtime, periodic

log = logging.getLogger("kap.backups.jobs")


@periodic(NIGHTLY_CRON)
def nightly_backups() -> dict[str, Any]:
    """Write today's backup of every active project (idempotent per day) and trim old ones."""
    summary = run_nightly(current_runtime())
    log.info("nightly backups: %s", summary)
    return summary
