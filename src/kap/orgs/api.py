"""Org settings routes: the org as its members see it, and who may create projects.

The display name and logo clients see are set through the branding routes
(`kap.accounts.branding`); these add the org's own settings beside them.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from kap.core.deps import CurrentIdentity, UserSession
from kap.core.errors import Forbidden, raises
from kap.core.routes import AnswerInThread
from kap.orgs import service
from kap.orgs.schemas import OrgRead, OrgUpdate

router = APIRouter(prefix="/api/orgs", tags=["orgs"], route_class=AnswerInThread)


@router.get("/{org_id}")
def get_org(org_id: uuid.UUID, identity: CurrentIdentity, session: UserSession) -> OrgRead:
    """An org the caller belongs to: its names, logo type, who may create projects, what the caller may do."""
    return service.get_org(session, identity, org_id)


@router.patch("/{org_id}")
@raises(Forbidden)
def update_org(org_id: uuid.UUID, body: OrgUpdate, identity: CurrentIdentity, session: UserSession) -> OrgRead:
    """Set who may create projects: org owners and admins (the default) or every member (org owners and admins)."""
    return service.update_org(service.manage(session, identity, org_id), body)
