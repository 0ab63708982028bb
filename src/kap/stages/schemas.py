"""Request and response shapes for stages and sign-off."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, EmailStr, Field, StrictBool, model_validator

from kap.core.schemas import Day, Ok, Strict

EditableStatus = Literal["pending", "in_progress"]
Decision = Literal["approve", "reject"]
MAX_EXPIRY_HOURS = 30 * 24


def _check_dates(start: date | None, end: date | None) -> None:
    if start and end and end < start:
        raise ValueError("planned_end is before planned_start")


class StageCreate(Strict):
    title: str = Field(min_length=1, max_length=200)
    order: int | None = Field(default=None, ge=0, le=10_000)
    status: EditableStatus = "pending"
    planned_start: Day | None = None
    planned_end: Day | None = None
    owner_id: uuid.UUID | None = None
    summary: str = Field(default="", max_length=20_000)
    artifact_ids: list[uuid.UUID] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _dates(self) -> StageCreate:
        _check_dates(self.planned_start, self.planned_end)
        return self


class StageUpdate(Strict):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    order: int | None = Field(default=None, ge=0, le=10_000)
    status: EditableStatus | None = None
    planned_start: Day | None = None
    planned_end: Day | None = None
    owner_id: uuid.UUID | None = None
    summary: str | None = Field(default=None, max_length=20_000)
    artifact_ids: list[uuid.UUID] | None = Field(default=None, max_length=100)

    @model_validator(mode="after")
    def _dates(self) -> StageUpdate:
        _check_dates(self.planned_start, self.planned_end)
        return self


class ArtifactRef(BaseModel):
    id: uuid.UUID
    name: str
    version: int
    sha256: str


class SignoffRequestCreate(Strict):
    email_to: EmailStr
    name: str | None = Field(default=None, max_length=200)
    message: str | None = Field(default=None, max_length=4000)
    expires_in_hours: int = Field(default=72, ge=1, le=MAX_EXPIRY_HOURS)


class DecisionIn(Strict):
    decision: Decision
    name: str = Field(min_length=1, max_length=200)
    note: str = Field(default="", max_length=4000)
    # The digest of the content the signer was shown (the page sends it back); see revisions.py.
    content_digest: str | None = Field(default=None, max_length=64)
    code: str | None = Field(default=None, max_length=12)

    @model_validator(mode="after")
    def _note_for_reject(self) -> DecisionIn:
        if self.decision == "reject" and not self.note:
            raise ValueError("a note is required to reject")
        return self


class InternalDecisionIn(Strict):
    decision: Decision
    name: str | None = Field(default=None, min_length=1, max_length=200)
    note: str = Field(default="", max_length=4000)

    @model_validator(mode="after")
    def _note_for_reject(self) -> InternalDecisionIn:
        if self.decision == "reject" and not self.note:
            raise ValueError("a note is required to reject")
        return self


class SignoffRequestRead(BaseModel):
    id: uuid.UUID
    stage_id: uuid.UUID
    channel: str
    status: str
    recipient_email: str
    recipient_name: str | None
    message: str | None
    email_status: str | None
    created_at: datetime
    expires_at: datetime
    opened_at: datetime | None
    open_count: int
    decided_at: datetime | None
    revoked_at: datetime | None
    replaced_by_id: uuid.UUID | None
    signer_name: str | None
    signer_email: str | None
    note: str | None
    reminder_count: int = 0
    reminded_at: datetime | None = None
    expiry_notified_at: datetime | None = None
    code_verified_at: datetime | None = None


class SignoffSettingsRead(BaseModel):
    """A project's sign-off settings: when signers are reminded and whether they confirm a mailed code."""

    reminder_days: int
    max_reminders: int
    require_code: bool


class SignoffSettingsUpdate(Strict):
    # 0 turns reminders off.
    reminder_days: int | None = Field(default=None, ge=0, le=30)
    require_code: StrictBool | None = None


class RevisionRead(BaseModel):
    id: uuid.UUID
    number: int
    state: str
    title: str
    summary: str
    planned_start: date | None
    planned_end: date | None
    documents: list[dict[str, Any]]
    request_id: uuid.UUID | None
    created_at: datetime
    signed_at: datetime | None


class ChangeRead(BaseModel):
    field: str
    signed: Any
    current: Any


class DocumentsIn(Strict):
    artifact_ids: list[uuid.UUID] = Field(max_length=100)


class StageRead(BaseModel):
    id: uuid.UUID
    project_id: uuid.UUID
    title: str
    order: int
    status: str
    planned_start: date | None
    planned_end: date | None
    owner_id: uuid.UUID | None
    summary: str
    artifacts: list[ArtifactRef]
    latest_request: SignoffRequestRead | None = None
    signed_revision: RevisionRead | None = None
    changed_after_signoff: bool = False
    changes: list[ChangeRead] = Field(default_factory=list)
    revisions: list[RevisionRead] = Field(default_factory=list)
    archived_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class StageList(Ok):
    stages: list[StageRead]


class SignoffRequested(Ok):
    request_id: uuid.UUID
    token_link: str
    expires_at: datetime
    email: dict[str, Any]
    request: SignoffRequestRead


class RequestList(Ok):
    requests: list[SignoffRequestRead]


class SignerRead(BaseModel):
    user_id: uuid.UUID
    email: str | None
    name: str | None
    created_at: datetime


class SignerList(Ok):
    signers: list[SignerRead]


class SignerFlag(Ok):
    user_id: uuid.UUID
    can_sign: bool


class SignoffDocumentRef(BaseModel):
    artifact_id: str | None
    name: str | None
    version: int | None
    sha256: str | None
    size: int | None
    media_type: str | None


class SignoffStageView(BaseModel):
    title: str
    summary: str | None
    planned_start: str | None
    planned_end: str | None


class SignoffLinkRead(BaseModel):
    """A request as its token holder sees it; dates stay as the ISO strings the link page shows."""

    request_id: uuid.UUID
    status: str
    project: str
    stage: SignoffStageView
    requester: str
    recipient_email: str
    message: str | None
    expires_at: str
    documents: list[SignoffDocumentRef]
    decided_at: str | None
    signer_name: str | None
    content_digest: str | None
    org: str
    code: SignoffCodeState | None = None


class SignoffCodeState(BaseModel):
    """Whether the signer must confirm a mailed code, and where that step stands."""

    required: bool
    sent: bool
    locked: bool
    expires_at: str | None
    tries_left: int


class SignoffCodeSent(Ok):
    sent_to: str
    expires_at: datetime | None
    tries_left: int


class SignoffLinkAnswer(Ok):
    signoff: SignoffLinkRead
