"""The external sign-off page and its JSON twin: authorised by the token in the path alone."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import ValidationError

from kap.core.deps import RuntimeDep, ServiceSession, limit_anonymous, request_address
from kap.core.errors import NotFound, raises
from kap.core.http import attachment_headers
from kap.core.routes import AnswerInThread
from kap.documents.service import iter_stream
from kap.stages.external import (
    AlreadyDecided,
    ContentChanged,
    LinkInvalid,
    LinkPaused,
    LinkView,
    decide_by_token,
    link_document,
    open_link,
    request_code,
    view_link,
)
from kap.stages.notify import notify_decided
from kap.stages.previews import MAX_PREVIEW_PAGES, pdf_page_png
from kap.stages.render import render
from kap.stages.schemas import DecisionIn, SignoffCodeSent, SignoffLinkAnswer, SignoffLinkRead
from kap.stages.verification import CodeRefused

router = APIRouter(tags=["signoff"], route_class=AnswerInThread)
Anonymous = Annotated[None, Depends(limit_anonymous)]

PAGE_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
}
DECIDED = ("approved", "rejected")
FILE_HEADERS = {"Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex, nofollow", "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff"}


def _page(state: str, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("view", None)
    context.setdefault("message", "")
    context.setdefault("error", "")
    context.setdefault("form", {"decision": "", "name": "", "note": ""})
    context.setdefault("notice", "")
    context.setdefault("action", "")
    return HTMLResponse(render("signoff_page.html", state=state, **context), status_code=status,
                        headers=PAGE_HEADERS)


def _client(request: Request, runtime: Any) -> dict[str, str | None]:
    return {"ip": request_address(request, runtime), "user_agent": request.headers.get("user-agent")}


def _form_error(exc: ValidationError) -> str:
    fields = {str(e["loc"][0]) if e["loc"] else "" for e in exc.errors()}
    if "decision" in fields:
        return "Choose approve or reject."
    if "name" in fields:
        return "Enter your name (up to 200 characters)."
    if "note" in fields:
        return "The note is too long (up to 4000 characters)."
    return "A note is required to reject."


@router.get("/signoff/{token}", include_in_schema=False)
def signoff_page(token: str, request: Request, _: Anonymous, session: ServiceSession,
                 runtime: RuntimeDep) -> HTMLResponse:
    """Show the stage and the decision form; opening the page decides nothing."""
    try:
        view = open_link(session, token, **_client(request, runtime))
    except LinkInvalid as exc:
        return _page("invalid", exc.status, message=exc.message)
    except LinkPaused as exc:
        return _page("paused", view=exc.view)
    state = "decided" if view.status in DECIDED else "form"
    return _page(state, view=view, action=request.url.path)


@router.post("/signoff/{token}", include_in_schema=False)
def signoff_submit(token: str, request: Request, _: Anonymous, session: ServiceSession, runtime: RuntimeDep,
                   decision: Annotated[str, Form()] = "",
                   name: Annotated[str, Form()] = "",
                   note: Annotated[str, Form()] = "",
                   content_digest: Annotated[str, Form(max_length=64)] = "",
                   code: Annotated[str, Form(max_length=12)] = "") -> HTMLResponse:
    """Record the decision sent from the page, once."""
    form = {"decision": decision, "name": name, "note": note}
    try:
        view = view_link(session, token)
        if view.status in DECIDED:
            raise AlreadyDecided(view)
        try:
            body = DecisionIn(decision=decision, name=name, note=note, content_digest=content_digest or None,
                              code=code or None)
        except ValidationError as exc:
            return _page("form", 422, view=view, form=form, error=_form_error(exc), action=request.url.path)
        done = decide_by_token(session, token, body, **_client(request, runtime))
        notify_decided(session, runtime.mailer, runtime.settings, done.request_id)
    except LinkInvalid as exc:
        return _page("invalid", exc.status, message=exc.message)
    except LinkPaused as exc:
        return _page("paused", 409, view=exc.view)
    except AlreadyDecided as exc:
        return _page("decided", 409, view=exc.view)
    except CodeRefused as exc:
        return _page("form", exc.status, view=view_link(session, token), form=form, action=request.url.path,
                     error=_code_error(exc))
    except ContentChanged:
        fresh = open_link(session, token, **_client(request, runtime))
        return _page("form", 409, view=fresh, form=form, action=request.url.path,
                     error="The stage or its documents changed while this page was open. "
                           "Please review them again before you decide.")
    return _page("done", view=done)


def _code_error(exc: CodeRefused) -> str:
    if exc.code == "code_required":
        return "Enter the 6-digit code we mailed you. Use 'Send me a code' first if you have none."
    return exc.message[:1].upper() + exc.message[1:] + "."


@router.post("/signoff/{token}/code", include_in_schema=False)
def signoff_code_page(token: str, request: Request, _: Anonymous, session: ServiceSession,
                      runtime: RuntimeDep) -> HTMLResponse:
    """Mail the signer a verification code and show the form with the code field."""
    action = request.url.path.removesuffix("/code")
    try:
        view = request_code(session, token, mailer=runtime.mailer, **_client(request, runtime))
    except LinkInvalid as exc:
        return _page("invalid", exc.status, message=exc.message)
    except LinkPaused as exc:
        return _page("paused", 409, view=exc.view)
    except AlreadyDecided as exc:
        return _page("decided", 409, view=exc.view)
    except CodeRefused as exc:
        return _page("form", exc.status, view=view_link(session, token), action=action, error=_code_error(exc))
    return _page("form", view=view, action=action,
                 notice=f"We sent a 6-digit code to {view.verification.sent_to}. It works for 10 minutes.")


@router.get("/signoff/{token}/documents/{artifact_id}", include_in_schema=False)
def signoff_document(token: str, artifact_id: uuid.UUID, request: Request, _: Anonymous, session: ServiceSession,
                     runtime: RuntimeDep) -> StreamingResponse:
    """Download one document attached to the stage, through the link alone."""
    art = link_document(session, token, artifact_id, download=True, **_client(request, runtime))
    stream = runtime.storage.artifacts.open(art.storage_key)
    headers = {**attachment_headers(art.name, art.size), "Referrer-Policy": "no-referrer",
               "X-Robots-Tag": "noindex, nofollow"}
    return StreamingResponse(iter_stream(stream), media_type=art.media_type, headers=headers)


@router.get("/signoff/{token}/documents/{artifact_id}/preview.png", include_in_schema=False)
def signoff_preview(token: str, artifact_id: uuid.UUID, _: Anonymous, session: ServiceSession,
                    runtime: RuntimeDep, page: int = 1) -> Response:
    """One page of an attached PDF as an image (the first pages only)."""
    art = link_document(session, token, artifact_id)
    if art.media_type != "application/pdf" or not 1 <= page <= MAX_PREVIEW_PAGES:
        raise NotFound("no preview of this page", code="preview_not_found")
    with runtime.storage.artifacts.open(art.storage_key) as stream:
        image = pdf_page_png(stream.read(), page - 1)
    if image is None:
        raise NotFound("no preview of this page", code="preview_not_found")
    return Response(image, media_type="image/png", headers=FILE_HEADERS)


def _json(view: LinkView) -> SignoffLinkAnswer:
    return SignoffLinkAnswer(signoff=SignoffLinkRead.model_validate(view.as_json()))


@router.get("/api/signoff/{token}")
@raises(LinkInvalid)
def signoff_read(token: str, request: Request, _: Anonymous, session: ServiceSession,
                 runtime: RuntimeDep) -> SignoffLinkAnswer:
    """The request behind a token, for integrations; reading decides nothing."""
    return _json(open_link(session, token, **_client(request, runtime)))


@router.post("/api/signoff/{token}/code")
def signoff_code(token: str, request: Request, _: Anonymous, session: ServiceSession,
                 runtime: RuntimeDep) -> SignoffCodeSent:
    """Mail the signer a 6-digit code (10 minutes, single use) when the project requires one to decide."""
    view = request_code(session, token, mailer=runtime.mailer, **_client(request, runtime))
    return SignoffCodeSent(sent_to=view.verification.sent_to, expires_at=view.verification.expires_at,
                           tries_left=view.verification.tries_left)


@router.post("/api/signoff/{token}")
@raises(LinkInvalid, AlreadyDecided, ContentChanged)
def signoff_decide(token: str, body: DecisionIn, request: Request, _: Anonymous, session: ServiceSession,
                   runtime: RuntimeDep) -> SignoffLinkAnswer:
    """Record a decision for a token, once: 409 already_decided after that."""
    done = decide_by_token(session, token, body, **_client(request, runtime))
    notify_decided(session, runtime.mailer, runtime.settings, done.request_id)
    return _json(done)
