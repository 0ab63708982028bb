"""Org settings: who may create projects, and the org as its members see it. The rules, never the commit."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kap.core.audit import record_audit
from kap.core.branding import LOGO_TYPES
from kap.core.deps import OrgContext, resolve_org_admin
from kap.core.errors import NotFound
from kap.core.models import Org, OrgMember
from kap.core.permissions import is_org_admin, may_create_projects
from kap.core.security import Identity
from kap.orgs.schemas import OrgRead, OrgUpdate


def org_role(session: Session, identity: Identity, org_id: uuid.UUID) -> str:
    """The caller's role in an org; the one 404 for an unknown org and for an org not theirs."""
    role = session.scalar(select(OrgMember.role).where(OrgMember.org_id == org_id,
                                                       OrgMember.user_id == identity.user_id))
    if role is None:
        raise NotFound("org not found")
    return role


def _org(session: Session, org_id: uuid.UUID) -> Org:
    org = session.get(Org, org_id)
    if org is None:
        raise NotFound("org not found")
    return org


def read(session: Session, org_id: uuid.UUID, role: str) -> OrgRead:
    org = _org(session, org_id)
    return OrgRead(id=org.id, name=org.name, display_name=org.display_name, brand=org.brand,
                   logo_type=org.logo_type if org.logo_type in LOGO_TYPES else None,
                   project_creators="members" if org.project_creators == "members" else "admins",
                   role=role, can_manage=is_org_admin(role),
                   can_create_projects=may_create_projects(role, org.project_creators))


def get_org(session: Session, identity: Identity, org_id: uuid.UUID) -> OrgRead:
    """An org as one of its members sees it, with what the caller may do in it."""
    return read(session, org_id, org_role(session, identity, org_id))


def manage(session: Session, identity: Identity, org_id: uuid.UUID) -> OrgContext:
    """The org for its owners and admins: 404 when it is not the caller's, 403 in plain words below admin."""
    return resolve_org_admin(session, identity, org_id)


def _audit(ctx: OrgContext, action: str, **details: Any) -> None:
    record_audit(ctx.session, org_id=ctx.org_id, actor_id=ctx.identity.user_id, actor_label=ctx.identity.label,
                 action=action, target_type="org", target_id=str(ctx.org_id), details=details)


def update_org(ctx: OrgContext, body: OrgUpdate) -> OrgRead:
    """Change who may create projects in the org."""
    org = _org(ctx.session, ctx.org_id)
    if body.project_creators != org.project_creators:
        _audit(ctx, "org.project_creators_changed", old=org.project_creators, new=body.project_creators)
        org.project_creators = body.project_creators
    ctx.session.flush()
    return read(ctx.session, ctx.org_id, ctx.role)
