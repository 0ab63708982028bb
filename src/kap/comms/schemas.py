"""Request and response shapes for comms settings, subscriptions and digests."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, EmailStr, Field, field_validator

from kap.comms.schedule import parse_hhmm
from kap.core.schemas import Strict

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
    digest_enabled: bool | None = None

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

    mine: dict[Category, bool] | None = None
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
