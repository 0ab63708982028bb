"""Request and response shapes for projects and their members."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, EmailStr, Field, model_validator

from kap.core.schemas import Ok, Strict

ProjectRole = Literal["owner", "admin", "pm", "lead", "member"]


class ProjectCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    org_id: uuid.UUID | None = None


class ProjectUpdate(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)


class ProjectRead(BaseModel):
    id: uuid.UUID
    org_id: uuid.UUID
    name: str
    role: str
    created_at: datetime
    archived_at: datetime | None = None


class ProjectList(Ok):
    projects: list[ProjectRead]


class MemberAdd(Strict):
    user_id: uuid.UUID | None = None
    email: EmailStr | None = None
    role: ProjectRole = "member"

    @model_validator(mode="after")
    def _one_of(self) -> MemberAdd:
        if (self.user_id is None) == (self.email is None):
            raise ValueError("give exactly one of user_id or email")
        return self


class MemberUpdate(Strict):
    role: ProjectRole


class MemberRead(BaseModel):
    user_id: uuid.UUID
    email: str | None
    name: str | None
    role: str
    created_at: datetime


class MemberList(Ok):
    members: list[MemberRead]
