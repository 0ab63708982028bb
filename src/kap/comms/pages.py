"""Comms on the web: settings sections, the digest preview page and the dashboard's scheduler chip."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import available_timezones

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from kap.comms import service
from kap.comms.digest import Recipient, build_digest
from kap.core.db import utcnow
from kap.core.deps import ProjectContext, RuntimeDep
from kap.core.links import project_link
from kap.core.permissions import Action
from kap.projects.service import list_members
from kap.web.pages import project_page
from kap.web.registry import Panel, Row, dashboard_panel, nav_item, project_zone_source, settings_section
from kap.web.render import TEMPLATE_DIRS, Page, environment, when, with_page

router = APIRouter(include_in_schema=False)
TEMPLATES = Path(__file__).parent / "templates"
if TEMPLATES not in TEMPLATE_DIRS:
    TEMPLATE_DIRS.append(TEMPLATES)

ZONES = sorted(z for z in available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/"))) + ["UTC"]
nav_item("digest", "Digest", Action.DIGEST_PREVIEW, 60)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
CATEGORY_LABELS = {"digest": "Weekly digest", "signoff": "Sign-off news", "alerts": "Alerts"}


def _render(template: str, ctx: ProjectContext, **values: Any) -> str:
    return environment().get_template(template).render(ctx=ctx, weekdays=WEEKDAYS, categories=CATEGORY_LABELS,
                                                        api_q=f"project_id={ctx.project_id}", **values)


@project_zone_source
def project_timezone(ctx: ProjectContext) -> str:
    """The project's time zone: pages show every time in it."""
    return service.get_settings(ctx).timezone


@settings_section(order=20, action=Action.COMMS_MANAGE)
def comms_settings_section(ctx: ProjectContext) -> str | None:
    """Time zone, quiet hours, daily cap and the digest schedule (pm and above)."""
    return _render("comms_settings.html", ctx, settings=service.get_settings(ctx), zones=ZONES)


@settings_section(order=30, action=Action.SUBSCRIPTIONS_SELF)
def subscriptions_section(ctx: ProjectContext) -> str | None:
    """The caller's own subscriptions and, for pm and above, the external recipients."""
    return _render("comms_subscriptions.html", ctx, subs=service.get_subscriptions(ctx))


def scheduler_chip(status: dict[str, Any]) -> str:
    """One line: the last digest sent and the next window."""
    last = status.get("last_digest")
    window = status.get("next_window")
    zone = window["timezone"] if window else "UTC"
    sent = f"Last digest {when(last['at'], zone)}" if last else "No digest sent yet"
    if not status.get("digest_enabled") or not window:
        return f"{sent} · digest off"
    return f"{sent} · next window {when(window['start'], window['timezone'])}"


@dashboard_panel(order=30, action=Action.COMMS_READ)
def scheduler_panel(ctx: ProjectContext) -> Panel | None:
    """The scheduler chip: last digest and next window, with the last and next backup."""
    status = service.scheduler_status(ctx)
    backups = status.get("backups") or {}
    last = backups.get("last")
    zone = project_timezone(ctx)
    rows = [Row(text="Last backup", meta=when(last["at"], zone) if last else "none yet"),
            Row(text="Next backup", meta=when(backups.get("next"), zone))]
    if backups.get("last_failure"):
        rows.append(Row(text="Last backup failed", meta=str(backups["last_failure"].get("error") or "")[:120]))
    waiting = (status.get("waiting") or {}).get("total") or 0
    if waiting:
        rows.append(Row(text="Digests waiting", meta=str(waiting)))
    return Panel(id="scheduler", title="Scheduler", chip=scheduler_chip(status), rows=rows)


def _recipients(ctx: ProjectContext) -> dict[str, tuple[str, Recipient]]:
    """Whom the digest may be previewed for: each member, and each external recipient."""
    me = service.caller_recipient(ctx)
    choices: dict[str, tuple[str, Recipient]] = {me.key: ("You", me)}
    for m in list_members(ctx):
        if m.email and f"user:{m.user_id}" != me.key:
            choices[f"user:{m.user_id}"] = (f"{m.name or m.email} (member)",
                                             Recipient.member(m.user_id, m.email, m.name))
    if ctx.allows(Action.COMMS_MANAGE):
        for e in service.get_subscriptions(ctx).external or []:
            choices[f"email:{e.email}"] = (f"{e.name or e.email} (outside the project)",
                                            Recipient.outside(e.email, e.name))
    return choices


def _chosen(ctx: ProjectContext, key: str | None) -> tuple[str, Recipient]:
    choices = _recipients(ctx)
    chosen = key if key in choices else next(iter(choices))
    return chosen, choices[chosen][1]


@router.get("/p/{project_id}/digest")
def digest_page(project_id: str, request: Request, runtime: RuntimeDep,
                recipient: Annotated[str | None, Query(max_length=400)] = None) -> Response:
    """The weekly digest as a chosen recipient will get it, with a recipient picker."""
    def values(ctx: ProjectContext) -> dict[str, Any]:
        key, who = _chosen(ctx, recipient)
        digest = build_digest(ctx.session, ctx.scope, service.last_week(utcnow()), who,
                              base_url=runtime.settings.public_url)
        return {"choices": {k: label for k, (label, _) in _recipients(ctx).items()}, "chosen": key,
                "digest": digest, "mail_src": f"{project_link(ctx.project_id, 'digest/mail')}?"
                                              f"{urlencode({'recipient': key})}"}
    return project_page(request, runtime, project_id, "digest_preview.html", Action.DIGEST_PREVIEW, values)


@router.get("/p/{project_id}/digest/mail")
def digest_mail(project_id: str, request: Request, runtime: RuntimeDep,
                recipient: Annotated[str | None, Query(max_length=400)] = None) -> Response:
    """The digest mail's own HTML, framed by the preview page (mail HTML styles itself inline)."""
    def build(page: Page, session: Session) -> Response:
        assert page.ctx is not None
        _, who = _chosen(page.ctx, recipient)
        digest = build_digest(session, page.ctx.scope, service.last_week(utcnow()), who,
                              base_url=runtime.settings.public_url)
        return HTMLResponse(digest.html, headers={
            "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                                       "frame-ancestors 'self'; base-uri 'none'"})
    return with_page(request, runtime, build, project_id=project_id, action=Action.DIGEST_PREVIEW)
