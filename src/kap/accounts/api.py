"""Who am I, and signing in and out with an emailed link."""

from __future__ import annotations

import html
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, EmailStr
from sqlalchemy import select

from kap.core.deps import CurrentIdentity, RuntimeDep, ServiceSession, UserSession, limit_anonymous
from kap.core.errors import Gone, raises
from kap.core.login import consume_login_token, end_session, send_login_link, set_session_cookies
from kap.core.models import Org, OrgMember, User
from kap.core.routes import AnswerInThread
from kap.core.schemas import Ok, Strict
from kap.core.security import CSRF_COOKIE, SESSION_COOKIE
from kap.projects.schemas import ProjectRead
from kap.projects.service import list_projects

router = APIRouter(tags=["accounts"], route_class=AnswerInThread)
Anonymous = Annotated[None, Depends(limit_anonymous)]


class MagicLinkRequest(Strict):
    email: EmailStr


class MagicLinkConsume(Strict):
    token: str


class UserRead(BaseModel):
    id: uuid.UUID | None
    email: str | None
    name: str | None


class OrgMembershipRead(BaseModel):
    id: uuid.UUID
    name: str
    role: str


class MeRead(Ok):
    user: UserRead
    auth: str
    dev_role: str | None
    csrf_token: str | None
    orgs: list[OrgMembershipRead]
    projects: list[ProjectRead]


class MagicLinkSent(Ok):
    message: str


class SignedIn(Ok):
    user_id: uuid.UUID
    csrf_token: str


@router.get("/api/me")
def me(identity: CurrentIdentity, session: UserSession) -> MeRead:
    """The caller, their orgs and the projects they can reach."""
    user = session.get(User, identity.user_id)
    orgs = session.execute(
        select(Org.id, Org.name, OrgMember.role).join(OrgMember, OrgMember.org_id == Org.id)
        .where(OrgMember.user_id == identity.user_id).order_by(Org.name)
    ).all()
    return MeRead(
        user=UserRead(id=identity.user_id, email=user.email if user else identity.email,
                      name=user.name if user else None),
        auth=identity.via,
        dev_role=identity.dev_role,
        csrf_token=identity.csrf_token,
        orgs=[OrgMembershipRead(id=o.id, name=o.name, role=o.role) for o in orgs],
        projects=list_projects(session, identity),
    )


@router.post("/api/auth/magic-link")
def request_magic_link(body: MagicLinkRequest, _: Anonymous, session: ServiceSession,
                       runtime: RuntimeDep) -> MagicLinkSent:
    """Mail a sign-in link to a known user; the answer never says whether the email is known."""
    user = session.scalar(select(User).where(User.email == body.email.lower()))
    if user is not None:
        send_login_link(session, runtime.mailer, runtime.settings, user)
    return MagicLinkSent(message="If this address belongs to a Kap user, a sign-in link is on its way.")


@router.post("/api/auth/magic-link/consume")
@raises(Gone)
def consume_magic_link(body: MagicLinkConsume, _: Anonymous, session: ServiceSession,
                       runtime: RuntimeDep, response: Response) -> SignedIn:
    """Exchange a magic-link token for a session cookie."""
    user_id, new = consume_login_token(session, body.token, runtime.settings.kap_session_days)
    set_session_cookies(response, runtime.settings, new)
    return SignedIn(user_id=user_id, csrf_token=new.csrf_token)


@router.post("/api/auth/logout")
def logout(request: Request, identity: CurrentIdentity, runtime: RuntimeDep,
           response: Response) -> Ok:
    """End the cookie session, if any."""
    raw = request.cookies.get(SESSION_COOKIE)
    if raw:
        with runtime.db.service_transaction() as svc:
            end_session(svc, raw)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return Ok()


_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Sign in to Kap</title>
<style>body{{font:16px system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem;color:#1d2433}}
button{{font:inherit;padding:.6rem 1.2rem;border-radius:6px;border:0;background:#1f5eff;color:#fff}}
button:focus{{outline:3px solid #ffb000}}</style></head><body>{body}</body></html>"""


@router.get("/auth/magic/{token}", include_in_schema=False)
def magic_link_page(token: str, _: Anonymous) -> HTMLResponse:
    """Show a button that signs in; opening the link alone spends nothing (mail scanners open links)."""
    form = (f'<h1>Sign in to Kap</h1><form method="post" action="/auth/magic/{html.escape(token)}">'
            '<button type="submit">Sign in</button></form>')
    return HTMLResponse(_PAGE.format(body=form), headers={"Referrer-Policy": "no-referrer",
                                                          "Cache-Control": "no-store"})


@router.post("/auth/magic/{token}", include_in_schema=False)
def magic_link_submit(token: str, _: Anonymous, session: ServiceSession, runtime: RuntimeDep) -> Response:
    """Spend the link, set the session cookie and go to the app."""
    try:
        new = consume_login_token(session, token, runtime.settings.kap_session_days)[1]
    except Gone as exc:
        body = f"<h1>Link not valid</h1><p>{html.escape(exc.message)}.</p><p><a href='/login'>Ask for a new one</a></p>"
        return HTMLResponse(_PAGE.format(body=body), status_code=410,
                            headers={"Referrer-Policy": "no-referrer"})
    response = RedirectResponse("/", status_code=303)
    set_session_cookies(response, runtime.settings, new)
    return response
