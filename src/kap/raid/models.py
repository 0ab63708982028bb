"""RAID items, their comments and the record of what changed in them."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kap.core.db import Base, UTCDateTime, new_id, utcnow

KINDS = ("action", "risk", "issue", "decision")
STATES = ("suggested", "accepted", "dismissed")
STATUSES = ("open", "in_progress", "pending", "done", "closed", "resolved", "approved", "decided", "rejected")
OPEN_STATUSES = ("open", "in_progress", "pending")
SEVERITIES = ("low", "medium", "high", "critical")


class RaidItem(Base):
    """One action, risk, issue or decision of a project, with the document text it came from."""

    __tablename__ = "raid_items"
    __table_args__ = (
        # One item per reference (or per normalised title when there is none): re-ingest updates it.
        UniqueConstraint("project_id", "fingerprint", name="uq_raid_items_project_fingerprint"),
        Index("ix_raid_items_project_kind_state", "project_id", "kind", "state"),
        Index("ix_raid_items_source", "source_artifact_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    ref: Mapped[str | None] = mapped_column(String(40))
    fingerprint: Mapped[str] = mapped_column(String(80))
    title: Mapped[str] = mapped_column(Text)
    details: Mapped[str] = mapped_column(Text, default="")
    owner: Mapped[str | None] = mapped_column(String(200))
    due: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20), default="open")
    severity: Mapped[str | None] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20), default="suggested")
    origin: Mapped[str] = mapped_column(String(20), default="extracted")
    source_artifact_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("artifacts.id", ondelete="SET NULL"))
    source_page: Mapped[int | None] = mapped_column(Integer)
    source_locator: Mapped[str] = mapped_column(String(200), default="")
    source_quote: Mapped[str] = mapped_column(Text, default="")
    source_date: Mapped[date | None] = mapped_column(Date)
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reviewed_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class RaidComment(Base):
    __tablename__ = "raid_comments"
    __table_args__ = (Index("ix_raid_comments_item_created", "item_id", "created_at"),
                      Index("ix_raid_comments_project_created", "project_id", "created_at"))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("raid_items.id", ondelete="CASCADE"))
    author_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    author_label: Mapped[str] = mapped_column(String(320), default="")
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RaidChange(Base):
    """What changed in an item and why: a newer document ('source') or a person ('edit', 'review')."""

    __tablename__ = "raid_changes"
    __table_args__ = (Index("ix_raid_changes_item_created", "item_id", "created_at"),
                      Index("ix_raid_changes_project_created", "project_id", "created_at"))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("raid_items.id", ondelete="CASCADE"))
    origin: Mapped[str] = mapped_column(String(20))
    artifact_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("artifacts.id", ondelete="SET NULL"))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor_label: Mapped[str] = mapped_column(String(320), default="")
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
