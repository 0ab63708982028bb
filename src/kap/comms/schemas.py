"""Request and response shapes for comms settings, subscriptions and digests."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, EmailStr, Field, StrictBool, field_validator

from kap.comms.schedule import parse_hhmm
from kap.core.schemas import Ok, Strict

Category = Literal["digest", "signoff", "alerts"]
ExternalCategory = Literal["digest", "signoff"]


def _digest_only() -> list[ExternalCategory]:
    return ["digest"]


def _check_timezone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA time zone such as Europe/Berlin") from None
    return value


def _check_clock(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    parse_hhmm(value)
    return value


class CommsSettingsUpdate(Strict):
    timezone: str | None = Field(default=None, max_length=64)
    quiet_start: str | None = None
    quiet_end: str | None = None
    daily_cap: int | None = Field(default=None, ge=1, le=1000)
    digest_weekday: int | None = Field(default=None, ge=0, le=6)
    digest_hour: int | None = Field(default=None, ge=0, le=23)
    digest_enabled: StrictBool | None = None

    _tz = field_validator("timezone")(_check_timezone)
    _clock = field_validator("quiet_start", "quiet_end")(_check_clock)


class CommsSettingsRead(BaseModel):
    timezone: str
    quiet_start: str | None
    quiet_end: str | None
    daily_cap: int
    digest_weekday: int
    digest_hour: int
    digest_enabled: bool


class ExternalRecipient(Strict):
    email: EmailStr
    name: str | None = Field(default=None, max_length=200)
    categories: list[ExternalCategory] = Field(default_factory=_digest_only)


class SubscriptionsUpdate(Strict):
    """`mine` sets the caller's own categories; `external` (pm and above) replaces the external list."""

    mine: dict[Category, StrictBool] | None = None
    external: list[ExternalRecipient] | None = Field(default=None, max_length=200)


class ExternalRead(BaseModel):
    email: str
    name: str | None
    categories: dict[str, bool]
    suppressed: str | None = None


class SubscriptionsRead(BaseModel):
    ok: bool = True
    mine: dict[str, bool]
    external: list[ExternalRead] | None = None


class DigestSendRequest(Strict):
    to: EmailStr | None = None


class WindowRead(BaseModel):
    start_local: datetime
    end_local: datetime
    start_utc: datetime
    end_utc: datetime
    timezone: str


class BounceFlag(BaseModel):
    at: str
    email: str | None
    reason: str | None


class CommsSettingsAnswer(Ok):
    settings: CommsSettingsRead


class CommsSettingsPage(CommsSettingsAnswer):
    flags: list[BounceFlag]


class DigestProject(BaseModel):
    id: uuid.UUID
    name: str


class DigestPeriod(BaseModel):
    start: str
    end: str


class DigestRecipient(BaseModel):
    email: str
    external: bool


class DigestItem(BaseModel):
    title: str
    detail: str
    url: str | None


class DigestSection(BaseModel):
    key: str
    title: str
    counts: dict[str, int]
    more: int
    items: list[DigestItem]


class DigestPreviewRead(Ok):
    """The digest as built for the caller; dates are the ISO strings the mail shows."""

    project: DigestProject
    period: DigestPeriod
    recipient: DigestRecipient
    counts: dict[str, int]
    sections: list[DigestSection]
    subject: str
    html: str
    text: str


class DigestSent(Ok):
    to: str
    status: str
    provider: str
    provider_id: str | None
    error: str | None
    email_log_id: uuid.UUID | None
    counts: dict[str, int]


class LastDigest(BaseModel):
    at: str
    iso_week: str
    recipients: int


class ScheduleWindow(BaseModel):
    """A send window in project time and in UTC, as ISO strings with their offsets."""

    start: str
    end: str
    start_utc: str
    end_utc: str
    timezone: str


class WaitingMail(BaseModel):
    total: int
    by_reason: dict[str, int]
    next_attempt: str | None


class BackupSchedule(BaseModel):
    last: dict[str, Any] | None
    next: datetime
    last_failure: dict[str, Any] | None


class SchedulerStatus(Ok):
    digest_enabled: bool
    last_digest: LastDigest | None
    next_window: ScheduleWindow | None
    current_window: ScheduleWindow
    waiting: WaitingMail
    quiet_now: bool
    backups: BackupSchedule


class WebhookAccepted(Ok):
    flagged: bool
