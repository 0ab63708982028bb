"""Request and response shapes for RAID items."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from kap.core.schemas import Day, Ok, Strict

Kind = Literal["action", "risk", "issue", "decision"]
State = Literal["suggested", "accepted", "dismissed"]
Status = Literal["open", "in_progress", "pending", "done", "closed", "resolved", "approved", "decided", "rejected"]
Severity = Literal["low", "medium", "high", "critical"]


class RaidItemCreate(Strict):
    kind: Kind
    title: str = Field(min_length=1, max_length=2000)
    ref: str | None = Field(default=None, max_length=40, pattern=r"^[A-Za-z0-9#][A-Za-z0-9#._-]*$")
    details: str = Field(default="", max_length=20_000)
    owner: str | None = Field(default=None, max_length=200)
    due: Day | None = None
    status: Status = "open"
    severity: Severity | None = None


class RaidItemUpdate(Strict):
    kind: Kind | None = None
    title: str | None = Field(default=None, min_length=1, max_length=2000)
    ref: str | None = Field(default=None, max_length=40, pattern=r"^[A-Za-z0-9#][A-Za-z0-9#._-]*$")
    details: str | None = Field(default=None, max_length=20_000)
    owner: str | None = Field(default=None, max_length=200)
    due: Day | None = None
    status: Status | None = None
    severity: Severity | None = None


class CommentCreate(Strict):
    body: str = Field(min_length=1, max_length=10_000)


class SourceRead(BaseModel):
    artifact_id: uuid.UUID | None
    artifact_name: str | None
    page: int | None
    locator: str
    quote: str
    link: str | None


class RaidItemRead(BaseModel):
    id: uuid.UUID
    project_id: uuid.UUID
    kind: str
    ref: str | None
    title: str
    details: str
    owner: str | None
    due: date | None
    status: str
    severity: str | None
    state: str
    origin: str
    overdue: bool
    source: SourceRead
    created_at: datetime
    updated_at: datetime
    reviewed_at: datetime | None


class CommentRead(BaseModel):
    id: uuid.UUID
    item_id: uuid.UUID
    author: str
    body: str
    created_at: datetime


class ChangeRead(BaseModel):
    id: uuid.UUID
    origin: str
    actor: str
    artifact_id: uuid.UUID | None
    changes: dict[str, Any]
    created_at: datetime


class RaidItemList(Ok):
    items: list[RaidItemRead]


class CommentList(Ok):
    comments: list[CommentRead]


class RaidItemDetail(CommentList):
    item: RaidItemRead
    changes: list[ChangeRead]
