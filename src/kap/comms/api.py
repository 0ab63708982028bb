"""Comms routes: settings, subscriptions, digest preview and send, scheduler status,
one-click unsubscribe pages and the Mailgun webhook."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from kap.comms import jobs as _jobs  # noqa: F401  (registers the digest tick and send jobs)
from kap.comms import service, webhooks
from kap.comms.digest import TEMPLATES
from kap.comms.schemas import (
    CommsSettingsAnswer,
    CommsSettingsPage,
    CommsSettingsUpdate,
    DigestPreviewRead,
    DigestSendRequest,
    DigestSent,
    SchedulerStatus,
    SubscriptionsRead,
    SubscriptionsUpdate,
    WebhookAccepted,
)
from kap.core.branding import brand_of
from kap.core.db import utcnow
from kap.core.deps import ProjectContext, RuntimeDep, ServiceSession, limit_anonymous, request_address, require
from kap.core.errors import Conflict, Forbidden, NotConfigured, NotFound, ServiceUnavailable, ValidationFailed, raises
from kap.core.mail import Mail
from kap.core.models import Project
from kap.core.openapi import html_page
from kap.core.permissions import Action
from kap.core.routes import AnswerInThread
from kap.core.runtime import Runtime

router = APIRouter(tags=["comms"], route_class=AnswerInThread)

CommsRead = Annotated[ProjectContext, require(Action.COMMS_READ)]
CommsManage = Annotated[ProjectContext, require(Action.COMMS_MANAGE)]
SubscriptionsSelf = Annotated[ProjectContext, require(Action.SUBSCRIPTIONS_SELF, also=(Action.COMMS_MANAGE,))]
DigestPreview = Annotated[ProjectContext, require(Action.DIGEST_PREVIEW)]
DigestSend = Annotated[ProjectContext, require(Action.DIGEST_SEND)]
Anonymous = Annotated[None, Depends(limit_anonymous)]


@router.get("/api/comms/settings")
def get_comms_settings(ctx: CommsManage) -> CommsSettingsPage:
    """The project's timezone, quiet hours, daily cap and digest schedule."""
    return CommsSettingsPage.model_validate({"settings": service.get_settings(ctx),
                                             "flags": service.bounce_flags(ctx)})


@router.put("/api/comms/settings")
def put_comms_settings(body: CommsSettingsUpdate, ctx: CommsManage) -> CommsSettingsAnswer:
    """Change comms settings; an invalid value is a 422 naming the field."""
    return CommsSettingsAnswer(settings=service.update_settings(ctx, body))


def _subscriptions(ctx: ProjectContext, runtime: Runtime) -> SubscriptionsRead:
    suppressed: dict[str, str] = {}
    if ctx.may(Action.COMMS_MANAGE):
        emails = [e.email for e in service.get_subscriptions(ctx).external or []]
        with runtime.db.service_session() as trusted:
            suppressed = service.suppressed_addresses(trusted, emails)
    return service.get_subscriptions(ctx, suppressed)


@router.get("/api/subscriptions")
def get_subscriptions(ctx: SubscriptionsSelf, runtime: RuntimeDep) -> SubscriptionsRead:
    """The caller's own subscriptions; pm and above also see the external recipients."""
    return _subscriptions(ctx, runtime)


@router.put("/api/subscriptions")
@raises(Forbidden)
def put_subscriptions(body: SubscriptionsUpdate, ctx: SubscriptionsSelf, runtime: RuntimeDep) -> SubscriptionsRead:
    """Change the caller's own categories; pm and above may replace the external recipients."""
    service.update_subscriptions(ctx, body)
    return _subscriptions(ctx, runtime)


@router.get("/api/digest/preview")
def preview_digest(ctx: DigestPreview, runtime: RuntimeDep) -> DigestPreviewRead:
    """The digest the caller would receive for the last seven days."""
    digest = service.preview(ctx, base_url=runtime.settings.public_url)
    return DigestPreviewRead.model_validate(digest.as_dict())


@router.post("/api/digest/send")
@raises(ValidationFailed, ServiceUnavailable)
def send_digest_now(ctx: DigestSend, runtime: RuntimeDep, body: DigestSendRequest | None = None) -> DigestSent:
    """Send the digest now to `to`, or to DIGEST_TEST_EMAIL."""
    to, digest, result = service.send_now(ctx, runtime, body.to if body else None)
    if result.status == "failed":
        raise ServiceUnavailable(f"the mail backend refused the message: {result.error}", code="mail_failed",
                                 details={"email_log_id": str(result.log_id)})
    return DigestSent(to=to, status=result.status, provider=result.provider, provider_id=result.provider_id,
                      error=result.error, email_log_id=result.log_id, counts=digest.counts)


@router.get("/api/scheduler/status")
def scheduler_status(ctx: CommsRead) -> SchedulerStatus:
    """Last digest sent, the next window (project time and UTC), what waits, backups."""
    return SchedulerStatus.model_validate(service.scheduler_status(ctx))


def _page(title: str, message: str, status: int = 200, *, action: str | None = None) -> HTMLResponse:
    html = TEMPLATES.get_template("unsubscribe.html").render(title=title, message=message,
                                                             confirm=action is not None, action=action)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store",
                                                           "Referrer-Policy": "no-referrer"})


def _describe(session: Any, token: str) -> tuple[str, str] | None:
    try:
        row = service.subscription_by_token(session, token)
    except NotFound:
        return None
    project = session.get(Project, row.project_id)
    what = "weekly digest" if row.category == "digest" else f"{row.category} emails"
    return what, project.name if project else "this project"


INVALID = "This unsubscribe link is not valid. It may have been mistyped or cut short."


@router.get("/unsubscribe/{token}", response_class=HTMLResponse, responses=html_page(404))
def unsubscribe_page(token: str, _: Anonymous, session: ServiceSession) -> HTMLResponse:
    """Ask to confirm; nothing changes on GET (link scanners follow links)."""
    found = _describe(session, token)
    if found is None:
        return _page("Link not valid", INVALID, 404)
    what, project = found
    return _page("Unsubscribe", f"Stop receiving the {what} of {project}?", action=f"/unsubscribe/{token}")


@router.post("/unsubscribe/{token}", response_class=HTMLResponse, responses=html_page(404))
def unsubscribe_now(token: str, request: Request, _: Anonymous, session: ServiceSession,
                    runtime: RuntimeDep) -> HTMLResponse:
    """Unsubscribe: the confirm button and RFC 8058 one-click POSTs land here."""
    found = _describe(session, token)
    if found is None:
        return _page("Link not valid", INVALID, 404)
    service.unsubscribe(session, token, ip=request_address(request, runtime),
                        user_agent=request.headers.get("user-agent"))
    what, project = found
    return _page("Unsubscribed", f"You will no longer receive the {what} of {project}.")


@router.post("/api/webhooks/mailgun")
@raises(Forbidden, Conflict, NotConfigured)
def mailgun_webhook(body: webhooks.MailgunWebhook, runtime: RuntimeDep) -> WebhookAccepted:
    """Record a Mailgun delivery event; unsigned, badly signed or replayed posts are refused."""
    webhooks.verify(runtime.settings.mailgun_webhook_signing_key, body.signature, utcnow())
    assert body.signature is not None
    runtime.ensure_schema()
    # Its own transaction, committed before any alert is mailed (the mailer logs on its own).
    with runtime.db.service_transaction() as session:
        webhooks.accept_once(session, body.signature.token)
        flag = webhooks.handle(session, body.event_data)
        alert = _pm_alert(session, flag, runtime.settings.public_url) if flag is not None else []
    for mail in alert:
        runtime.mailer.send(mail)
    return WebhookAccepted(flagged=flag is not None)


def _pm_alert(session: Any, flag: webhooks.BounceFlag, public_url: str) -> list[Mail]:
    project = session.get(Project, flag.project_id)
    name = project.name if project else "a project"
    text = (f"The sign-off email Kap sent to {flag.email} for {name} could not be delivered ({flag.reason}). "
            f"Kap will not mail this address again; check it and send the request to a working address.\n\n"
            f"{public_url}/stages\n")
    org = brand_of(session, flag.org_id).name
    return [Mail(to=address, subject=f"{name}: a sign-off email to {flag.email} bounced",
                 text=f"{text}\n{org} via Kap\n", kind="alert", org_id=flag.org_id, project_id=flag.project_id,
                 sender_name=org)
            for address in webhooks.pm_addresses(session, flag.scope)]
