"""Backup runs (one per project and day) and restore activity (what came back, by whom, when)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kap.core.db import Base, UTCDateTime, new_id, utcnow

RUN_STATUSES = ("running", "done", "failed", "trimmed")
RESTORE_KINDS = ("reingest", "restore")


class BackupRun(Base):
    """One attempt to write a project's backup for a day; the key is reused by a same-day rerun."""

    __tablename__ = "backup_runs"
    __table_args__ = (
        Index("ix_backup_runs_project_day", "project_id", "day"),
        {"info": {"backup": False}},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(400))
    day: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20), default="running")
    trigger: Mapped[str] = mapped_column(String(20), default="nightly")
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    entry_count: Mapped[int] = mapped_column(Integer, default=0)
    row_counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RestoreActivity(Base):
    """A file stored back from a backup, or a whole project restored from one."""

    __tablename__ = "restore_activity"
    __table_args__ = (
        Index("ix_restore_activity_project_created", "project_id", "created_at"),
        {"info": {"backup": False}},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    backup_key: Mapped[str] = mapped_column(String(400))
    entry: Mapped[str | None] = mapped_column(String(400))
    artifact_id: Mapped[uuid.UUID | None] = mapped_column()
    artifact_name: Mapped[str | None] = mapped_column(String(255))
    target_project_id: Mapped[uuid.UUID | None] = mapped_column()
    mode: Mapped[str | None] = mapped_column(String(20))
    actor_id: Mapped[uuid.UUID | None] = mapped_column()
    actor_label: Mapped[str] = mapped_column(String(320), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
