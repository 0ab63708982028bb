"""Answers of the seeder and the smoke runner."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel

from kap.core.schemas import Ok


class Seeded(Ok):
    documents: int
    stages: int
    members: int
    needs_ocr: int


class SmokeStep(BaseModel):
    name: str
    ok: bool
    ms: float
    detail: str | None = None


class SmokeDigest(BaseModel):
    counts: dict[str, int]
    subject: str
    sections: list[str]


class SmokePassed(Ok):
    """A smoke run whose every step passed (a failed run answers 503 with the steps so far)."""

    stage_id: uuid.UUID
    signoff_request_id: uuid.UUID
    token_link: str
    email: dict[str, Any]
    digest_preview: SmokeDigest
    steps: list[SmokeStep]
