"""Comms tables: per-project settings, subscriptions, the digest send ledger, webhook tokens."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kap.core.db import Base, UTCDateTime, new_id, utcnow

CATEGORIES = ("digest", "signoff", "alerts")
SEND_STATUSES = ("due", "deferred", "sending", "sent", "suppressed", "failed")


class CommsSettings(Base):
    """A project's timezone, quiet hours, daily cap and digest schedule (one row per project)."""

    __tablename__ = "comms_settings"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # No column default: None means "no quiet hours" and must reach the database as NULL.
    quiet_start: Mapped[str | None] = mapped_column(String(5))
    quiet_end: Mapped[str | None] = mapped_column(String(5))
    daily_cap: Mapped[int] = mapped_column(Integer, default=20)
    digest_weekday: Mapped[int] = mapped_column(Integer, default=0)
    digest_hour: Mapped[int] = mapped_column(Integer, default=9)
    digest_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # The last window whose recipients were planned, so ticks skip planned projects cheaply.
    planned_window: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Subscription(Base):
    """One recipient's choice for one category; `recipient_key` is 'user:<id>' or 'email:<addr>'."""

    __tablename__ = "comms_subscriptions"
    __table_args__ = (UniqueConstraint("project_id", "recipient_key", "category",
                                       name="uq_comms_subscriptions_recipient"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    recipient_key: Mapped[str] = mapped_column(String(340))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(20))
    subscribed: Mapped[bool] = mapped_column(Boolean, default=True)
    # Kept in the clear so every message can carry it; it only ever unsubscribes this row.
    token: Mapped[str] = mapped_column(String(64), unique=True)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class DigestSend(Base):
    """One digest for one recipient and ISO week; the unique key is the idempotency key."""

    __tablename__ = "digest_sends"
    __table_args__ = (
        UniqueConstraint("project_id", "recipient_key", "iso_week", name="uq_digest_sends_week"),
        Index("ix_digest_sends_status_not_before", "status", "not_before"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    recipient_key: Mapped[str] = mapped_column(String(340))
    email: Mapped[str] = mapped_column(String(320))
    iso_week: Mapped[str] = mapped_column(String(10))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20), default="due")
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    defer_reason: Mapped[str | None] = mapped_column(String(40))
    deferrals: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claim_token: Mapped[str | None] = mapped_column(String(32), index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    email_log_id: Mapped[uuid.UUID | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class WebhookToken(Base):
    """A Mailgun webhook token already accepted: a second post with it is a replay."""

    __tablename__ = "mailgun_webhook_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    token: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
