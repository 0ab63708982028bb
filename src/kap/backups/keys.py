"""Backup keys: `backups/<org>/<project>/YYYYMMDD.zip`, built from ids and dates only."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime

from kap.core.errors import NotFound

_DAY = re.compile(r"^(\d{8})\.zip$")


def project_prefix(org_id: uuid.UUID, project_id: uuid.UUID) -> str:
    """The folder holding one project's backups."""
    return f"backups/{org_id}/{project_id}/"


def backup_key(org_id: uuid.UUID, project_id: uuid.UUID, day: date) -> str:
    """The key of a project's backup for a day."""
    return f"{project_prefix(org_id, project_id)}{day:%Y%m%d}.zip"


def key_day(key: str) -> date | None:
    """The day a well-formed key names, or None."""
    found = _DAY.match(key.rsplit("/", 1)[-1])
    if not found:
        return None
    try:
        return datetime.strptime(found.group(1), "%Y%m%d").date()
    except ValueError:
        return None


def own_key(org_id: uuid.UUID, project_id: uuid.UUID, key: str | None) -> str:
    """Accept a key only when it is one of this project's backup keys; anything else is the one 404."""
    prefix = project_prefix(org_id, project_id)
    if not key or len(key) > 200 or not key.startswith(prefix) or key_day(key) is None \
            or "/" in key[len(prefix):] or key != backup_key(org_id, project_id, key_day(key) or date.min):
        raise NotFound("backup not found", code="backup_not_found")
    return key
