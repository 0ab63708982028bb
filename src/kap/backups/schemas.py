"""Backup schemas: listings, contents, restore requests and restore activity."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from kap.core.schemas import Ok, Strict


class BackupRead(BaseModel):
    key: str
    date: date
    size: int
    entries: int | None = None
    created_at: datetime | None = None


class BackupList(BaseModel):
    ok: bool = True
    backups: list[BackupRead]
    retention_days: int
    last_backup: dict[str, object] | None = None
    next_backup: datetime


class EntryRead(BaseModel):
    name: str
    size: int
    type: Literal["data", "artifact"]
    media_type: str
    sha256: str
    artifact_id: uuid.UUID | None = None
    original_name: str | None = None
    rows: int | None = None


class BackupContents(BaseModel):
    ok: bool = True
    key: str
    created_at: str | None
    kap_version: str | None
    schema_revisions: list[str]
    row_counts: dict[str, int]
    entries: list[EntryRead]


class RestoreCreate(Strict):
    target: Literal["new", "replace"] = "new"
    confirm: str | None = Field(default=None, max_length=200)


class RestoreResult(BaseModel):
    ok: bool = True
    project_id: uuid.UUID
    target: Literal["new", "replace"]
    backup_key: str
    row_counts: dict[str, int]
    files: int
    skipped_rows: dict[str, int]
    reindex_queued: int


class ReingestResult(BaseModel):
    ok: bool = True
    artifact_id: uuid.UUID
    link: str
    status: str
    mode: Literal["new_version", "new_document"]
    version: int


class RestoreActivityRead(BaseModel):
    id: uuid.UUID
    kind: str
    backup_key: str
    entry: str | None
    artifact_id: uuid.UUID | None
    artifact_name: str | None
    target_project_id: uuid.UUID | None
    mode: str | None
    actor_label: str
    created_at: datetime
    link: str | None


class RunResult(BaseModel):
    ok: bool = True
    key: str
    size: int
    entries: int
    row_counts: dict[str, int]
    replaced: bool


class RestoreActivityList(Ok):
    activity: list[RestoreActivityRead]
