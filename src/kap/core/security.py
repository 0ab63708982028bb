"""Who is calling: dev headers, Bearer JWT, Kap's session cookie or the internal bearer."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import jwt
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kap.core.db import Database, utcnow
from kap.core.errors import Unauthorized, ValidationFailed
from kap.core.models import Org, OrgMember, User, UserSession
from kap.core.permissions import PROJECT_ROLE_RANK
from kap.core.settings import Settings

SESSION_COOKIE = "kap_session"
# The key type each accepted asymmetric algorithm needs; a token naming another is refused.
JWKS_KEY_TYPES = {"RS256": "RSA", "ES256": "EC"}
CSRF_COOKIE = "kap_csrf"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

Via = Literal["dev", "jwt", "session", "internal"]


@dataclass(frozen=True)
class Identity:
    """An authenticated caller. Roles are never taken from the credential itself."""

    via: Via
    user_id: uuid.UUID | None
    email: str | None = None
    dev_role: str | None = None
    dev_org: uuid.UUID | None = None
    csrf_token: str | None = None

    @property
    def is_internal(self) -> bool:
        return self.via == "internal"

    @property
    def label(self) -> str:
        if self.is_internal:
            return "internal"
        return self.email or str(self.user_id)


def hash_token(token: str) -> str:
    """The stored form of a secret token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A URL-safe secret with 256 random bits."""
    return secrets.token_urlsafe(32)


@dataclass
class Credentials:
    """What a request presents, read from headers and cookies only."""

    bearer: str | None = None
    dev_user: str | None = None
    dev_org: str | None = None
    dev_role: str | None = None
    session: str | None = None
    csrf: str | None = None
    method: str = "GET"


@dataclass
class IdentityResolver:
    """Turns credentials into an Identity, creating dev users and orgs on first use."""

    settings: Settings
    db: Database
    jwks_client: jwt.PyJWKClient | None = None
    _known: set[tuple[uuid.UUID, uuid.UUID | None]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.settings.jwks_url and self.jwks_client is None:
            self.jwks_client = jwt.PyJWKClient(self.settings.jwks_url, cache_keys=True, lifespan=600)

    def resolve(self, creds: Credentials) -> Identity | None:
        """Return the caller's identity, None when no credential was presented."""
        if creds.bearer is not None:
            return self._from_bearer(creds.bearer)
        if creds.dev_user is not None or creds.dev_org is not None or creds.dev_role is not None:
            return self._from_dev_headers(creds)
        if creds.session is not None:
            return self._from_session(creds)
        return None

    def resolves_in_memory(self, creds: Credentials) -> bool:
        """Whether `resolve` can answer without I/O: no credential, the internal bearer, or dev
        headers / an HS256 bearer for a user already seen (a session cookie is looked up)."""
        if creds.bearer is not None:
            if self.jwks_client is not None:
                return False  # RS256/ES256 keys may have to be fetched
            return self._seen_subject(creds.bearer)
        if creds.dev_user is not None or creds.dev_org is not None or creds.dev_role is not None:
            try:
                key = (uuid.UUID(creds.dev_user or ""), uuid.UUID(creds.dev_org) if creds.dev_org else None)
            except ValueError:
                return True  # refused without I/O
            return key in self._known or not self.settings.dev_auth
        return creds.session is None

    def _seen_subject(self, token: str) -> bool:
        internal = self.settings.internal_api_bearer
        if internal and hmac.compare_digest(token.encode(), internal.encode()):
            return True
        try:
            subject = jwt.decode(token, options={"verify_signature": False}).get("sub")
            return (uuid.UUID(str(subject)), None) in self._known
        except (jwt.PyJWTError, ValueError, AttributeError):
            return True  # malformed: refused without I/O

    def _from_bearer(self, token: str) -> Identity:
        internal = self.settings.internal_api_bearer
        if internal and hmac.compare_digest(token.encode(), internal.encode()):
            return Identity(via="internal", user_id=None)
        claims = self.decode_jwt(token)
        try:
            user_id = uuid.UUID(str(claims["sub"]))
        except (KeyError, ValueError):
            raise Unauthorized("token subject is not a user id", code="invalid_token") from None
        raw_email = claims.get("email")
        email = raw_email if isinstance(raw_email, str) else None
        self._ensure_user(user_id, email, None)
        return Identity(via="jwt", user_id=user_id, email=email)

    def decode_jwt(self, token: str) -> dict[str, object]:
        """Verify a bearer JWT's signature, expiry and audience."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("malformed token", code="invalid_token") from None
        alg = header.get("alg")
        options: Any = {"require": ["exp", "sub"]}
        try:
            if alg == "HS256" and self.settings.kap_jwt_secret:
                return jwt.decode(token, self.settings.kap_jwt_secret, algorithms=["HS256"],
                                  audience=self.settings.kap_jwt_audience, options=options)
            if alg in JWKS_KEY_TYPES and self.jwks_client is not None:
                key = self.jwks_client.get_signing_key_from_jwt(token)
                if key.key_type != JWKS_KEY_TYPES[alg] or (key.algorithm_name or alg) != alg:
                    raise Unauthorized("token algorithm does not match its key", code="invalid_token")
                return jwt.decode(token, key.key, algorithms=[alg],
                                  audience=self.settings.kap_jwt_audience, options=options)
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired", code="token_expired") from None
        except (jwt.PyJWTError, jwt.PyJWKClientError, TypeError, ValueError):
            # A key the library cannot use for this token (wrong type or curve) is a bad token too.
            raise Unauthorized("invalid token", code="invalid_token") from None
        raise Unauthorized("token algorithm not accepted", code="invalid_token")

    def _from_dev_headers(self, creds: Credentials) -> Identity:
        if not self.settings.dev_auth:
            raise Unauthorized("dev headers are disabled (DEV_AUTH=0)", code="dev_auth_disabled")
        try:
            user_id = uuid.UUID(creds.dev_user or "")
            org_id = uuid.UUID(creds.dev_org) if creds.dev_org else None
        except ValueError:
            raise Unauthorized("X-Dev-User and X-Dev-Org must be UUIDs", code="invalid_dev_headers") from None
        role = (creds.dev_role or "owner").strip().lower()
        if role not in PROJECT_ROLE_RANK:
            raise ValidationFailed(f"X-Dev-Role must be one of {', '.join(PROJECT_ROLE_RANK)}",
                                   code="invalid_dev_headers")
        self._ensure_user(user_id, None, org_id)
        return Identity(via="dev", user_id=user_id, dev_role=role, dev_org=org_id)

    def _from_session(self, creds: Credentials) -> Identity:
        token_hash = hash_token(creds.session or "")
        with self.db.service_session() as session:
            row = session.execute(
                select(UserSession, User.email).join(User, User.id == UserSession.user_id)
                .where(UserSession.token_hash == token_hash, UserSession.expires_at > utcnow())
            ).first()
        if row is None:
            raise Unauthorized("session expired, sign in again", code="session_expired")
        user_session, email = row
        if creds.method in UNSAFE_METHODS and not (
            creds.csrf and hmac.compare_digest(creds.csrf, user_session.csrf_token)
        ):
            raise Unauthorized("missing or wrong CSRF token", code="csrf_failed")
        return Identity(via="session", user_id=user_session.user_id, email=email,
                        csrf_token=user_session.csrf_token)

    def _ensure_user(self, user_id: uuid.UUID, email: str | None, org_id: uuid.UUID | None) -> None:
        key = (user_id, org_id)
        if key in self._known:
            return
        with self._lock, self.db.service_transaction() as session:
            ensure_user(session, user_id, email=email, org_id=org_id)
        self._known.add(key)


def ensure_user(session: Session, user_id: uuid.UUID, *, email: str | None = None,
                org_id: uuid.UUID | None = None, org_name: str | None = None) -> None:
    """Create a user (and an org to join) on first sight; the first user of a new org owns it."""
    user = session.get(User, user_id)
    if user is None:
        email_taken = email and session.scalar(select(User.id).where(User.email == email))
        session.add(User(id=user_id, email=None if email_taken else email))
        session.flush()
    elif email and not user.email:
        user.email = email
    if org_id is None:
        return
    if session.get(Org, org_id) is None:
        session.add(Org(id=org_id, name=org_name or f"Org {str(org_id)[:8]}"))
        session.flush()
    member = session.scalar(select(OrgMember).where(OrgMember.org_id == org_id, OrgMember.user_id == user_id))
    if member is None:
        count = session.scalar(select(func.count()).select_from(OrgMember).where(OrgMember.org_id == org_id))
        session.add(OrgMember(org_id=org_id, user_id=user_id, role="owner" if not count else "member"))
        session.flush()
