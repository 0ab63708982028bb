"""Answers of the audit viewer and telemetry."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from kap.core.schemas import IsoDatetime, Ok


class AuditEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: IsoDatetime
    action: str
    actor_id: uuid.UUID | None
    actor_label: str
    project_id: uuid.UUID | None
    target_type: str
    target_id: str
    ip: str | None
    details: dict[str, Any]


class AuditPage(Ok):
    total: int
    limit: int
    offset: int
    events: list[AuditEventRead]


class TelemetryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: datetime
    kind: str
    status: int | None
    method: str
    path: str
    request_id: str
    user_id: uuid.UUID | None
    project_id: uuid.UUID | None
    details: dict[str, Any]


class TelemetryPage(Ok):
    total: int
    events: list[TelemetryRead]
