"""How an org appears to its clients: its display name and logo on pages and in mail."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, undefer

from kap.core.models import Org

LOGO_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
MAX_LOGO_BYTES = 256 * 1024


@dataclass(frozen=True)
class Brand:
    """An org's client-facing name and, when set, its logo as a data URI."""

    name: str
    logo_data_uri: str | None = None


def brand_of(session: Session, org_id: uuid.UUID) -> Brand:
    """The brand of an org (its name when no display name is set)."""
    org = session.scalar(select(Org).where(Org.id == org_id).options(undefer(Org.logo)))
    if org is None:
        return Brand(name="Kap")
    logo = None
    if org.logo and org.logo_type in LOGO_TYPES:
        logo = f"data:{org.logo_type};base64,{base64.b64encode(org.logo).decode()}"
    return Brand(name=org.brand, logo_data_uri=logo)


def sniff_logo(data: bytes) -> str | None:
    """The image type of a logo by its first bytes (PNG, JPEG, GIF, WebP), or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None
