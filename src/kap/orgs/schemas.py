"""Request and response shapes for org settings."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel

from kap.core.schemas import Strict

ProjectCreators = Literal["admins", "members"]


class OrgUpdate(Strict):
    project_creators: ProjectCreators


class OrgRead(BaseModel):
    id: uuid.UUID
    name: str
    display_name: str | None
    brand: str
    logo_type: str | None
    project_creators: ProjectCreators
    role: str
    can_manage: bool
    can_create_projects: bool
