"""An org's branding: the display name and logo its clients see on sign-off pages and in mail."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile
from pydantic import Field
from sqlalchemy import select

from kap.core.branding import MAX_LOGO_BYTES, brand_of, sniff_logo
from kap.core.deps import CurrentIdentity, OrgContext, UserSession, resolve_org_admin
from kap.core.errors import Forbidden, KapError, NotFound, ValidationFailed, raises
from kap.core.models import Org, OrgMember
from kap.core.routes import AnswerInThread
from kap.core.schemas import Ok, Strict

router = APIRouter(prefix="/api/orgs", tags=["accounts"], route_class=AnswerInThread)
Logo = Annotated[UploadFile | None, File(description="PNG, JPEG, GIF or WebP, up to 256 KB.")]


class BrandingIn(Strict):
    display_name: str | None = Field(default=None, max_length=200)


class BrandingRead(Ok):
    org_id: uuid.UUID
    name: str
    display_name: str | None
    shown_as: str
    from_: str = Field(serialization_alias="from")
    logo: str | None


class LogoRefused(KapError):
    status, code = 415, "unsupported_logo"


class LogoTooLarge(KapError):
    status, code = 413, "logo_too_large"


def _answer(ctx_session: Any, org_id: uuid.UUID) -> BrandingRead:
    org = ctx_session.get(Org, org_id)
    brand = brand_of(ctx_session, org_id)
    return BrandingRead(org_id=org_id, name=org.name, display_name=org.display_name, shown_as=brand.name,
                        from_=f"{brand.name} via Kap", logo=brand.logo_data_uri)


def _org_admin(session: Any, identity: Any, org_id: uuid.UUID) -> OrgContext:
    return resolve_org_admin(session, identity, org_id)


@router.get("/{org_id}/branding")
def get_branding(org_id: uuid.UUID, identity: CurrentIdentity, session: UserSession) -> BrandingRead:
    """How the org appears to clients (any member of the org)."""
    member = session.scalar(select(OrgMember.id).where(OrgMember.org_id == org_id,
                                                       OrgMember.user_id == identity.user_id))
    if member is None:
        raise NotFound("org not found")
    return _answer(session, org_id)


@router.put("/{org_id}/branding")
@raises(Forbidden)
def set_branding(org_id: uuid.UUID, body: BrandingIn, identity: CurrentIdentity,
                 session: UserSession) -> BrandingRead:
    """Set the display name clients see (org owners and admins); empty falls back to the org's name."""
    ctx = _org_admin(session, identity, org_id)
    org = session.get(Org, ctx.org_id)
    assert org is not None
    org.display_name = body.display_name or None
    session.flush()
    return _answer(session, org_id)


@router.put("/{org_id}/logo")
@raises(Forbidden, LogoTooLarge, LogoRefused, ValidationFailed)
async def set_logo(org_id: uuid.UUID, identity: CurrentIdentity, session: UserSession,
                   file: Logo = None) -> BrandingRead:
    """Upload the logo shown on the signer's page (org owners and admins)."""
    ctx = _org_admin(session, identity, org_id)  # before the body: an org id is checked first
    if file is None:
        raise ValidationFailed("send the logo as the multipart field 'file'", details={"field": "file"})
    data = await file.read(MAX_LOGO_BYTES + 1)
    if len(data) > MAX_LOGO_BYTES:
        raise LogoTooLarge(f"the logo is larger than {MAX_LOGO_BYTES // 1024} KB")
    media_type = sniff_logo(data)
    if media_type is None:
        raise LogoRefused("the logo must be a PNG, JPEG, GIF or WebP image")
    org = session.get(Org, ctx.org_id)
    assert org is not None
    org.logo, org.logo_type = data, media_type
    session.flush()
    return _answer(session, org_id)


@router.delete("/{org_id}/logo")
@raises(Forbidden)
def delete_logo(org_id: uuid.UUID, identity: CurrentIdentity, session: UserSession) -> BrandingRead:
    """Remove the logo."""
    ctx = _org_admin(session, identity, org_id)
    org = session.get(Org, ctx.org_id)
    assert org is not None
    org.logo, org.logo_type = None, None
    session.flush()
    return _answer(session, org_id)
