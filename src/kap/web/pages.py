"""The web shell: sign-in, project picker, dashboard, settings and the admin audit viewer."""

from __future__ import annotations

import hmac
import uuid
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kap.core.deps import ProjectContext, RuntimeDep, limit_anonymous
from kap.core.links import project_link
from kap.core.login import end_session, open_session, send_login_link, set_session_cookies
from kap.core.models import AuditEvent, TelemetryEvent, User
from kap.core.permissions import grantable_roles
from kap.core.security import CSRF_COOKIE, SESSION_COOKIE, ensure_user
from kap.projects.service import list_members, list_projects
from kap.web.registry import Panel, Row, build_panels, build_sections, dashboard_panel, visible_nav
from kap.web.render import Page, environment, last_project_id, page_identity, with_page

router = APIRouter(include_in_schema=False)
environment().globals["nav_items"] = lambda page: visible_nav(page.ctx) if page.ctx else []


def _safe_next(value: str | None) -> str:
    """Only same-site paths are followed after sign-in."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


@router.get("/login")
def login_page(request: Request, runtime: RuntimeDep, next: str = "/", sent: str | None = None) -> Response:
    page = Page(request=request, runtime=runtime, identity=None)
    return page.render("login.html", next=_safe_next(next), sent=sent, dev_user="", dev_org="")


@router.post("/login")
def login_submit(request: Request, runtime: RuntimeDep, email: Annotated[str, Form(max_length=320)],
                 next: Annotated[str, Form()] = "/") -> Response:
    """Mail a sign-in link; the answer is the same whether the address is known or not."""
    limit_anonymous(request, runtime)
    runtime.ensure_schema()
    with runtime.db.service_transaction() as session:
        user = session.scalar(select(User).where(User.email == email.strip().lower()))
        if user is not None:
            send_login_link(session, runtime.mailer, runtime.settings, user)
    query = urlencode({"next": _safe_next(next), "sent": email})
    return RedirectResponse(f"/login?{query}", status_code=303)


@router.post("/login/dev")
def dev_login(request: Request, runtime: RuntimeDep, user_id: Annotated[str, Form()],
              org_id: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/") -> Response:
    """Sign in as any user id while DEV_AUTH=1 (created on first use, like the dev headers)."""
    if not runtime.settings.dev_auth:
        return RedirectResponse("/login", status_code=303)
    limit_anonymous(request, runtime)
    runtime.ensure_schema()
    try:
        uid = uuid.UUID(user_id)
        org = uuid.UUID(org_id) if org_id.strip() else None
    except ValueError:
        page = Page(request=request, runtime=runtime, identity=None)
        return page.render("login.html", status=422, next=_safe_next(next), sent=None, dev_user=user_id,
                           dev_org=org_id)
    with runtime.db.service_transaction() as session:
        ensure_user(session, uid, org_id=org)
        new = open_session(session, uid, runtime.settings.kap_session_days)
    response = RedirectResponse(_safe_next(next), status_code=303)
    set_session_cookies(response, runtime.settings, new)
    return response


@router.post("/logout")
def logout_page(request: Request, runtime: RuntimeDep, csrf: Annotated[str, Form()] = "") -> Response:
    identity = page_identity(request, runtime)
    if identity and identity.csrf_token and hmac.compare_digest(csrf, identity.csrf_token):
        with runtime.db.service_transaction() as session:
            end_session(session, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.get("/")
def home(request: Request, runtime: RuntimeDep) -> Response:
    def build(page: Page, session: Session) -> Response:
        assert page.identity is not None
        return page.render("home.html", projects=list_projects(session, page.identity))
    return with_page(request, runtime, build)


@router.get("/projects/{project_id}/open")
@router.get("/projects/{project_id}")
def open_project(project_id: str) -> Response:
    """Old project links (and links in older mails) open the project's dashboard."""
    return RedirectResponse(project_link(project_id), status_code=303)


def project_page(request: Request, runtime: Any, project_id: str, template: str, action: str,
                 values: Any = None) -> Response:
    """Render a page of the project in the path, authorised for `action` like the API."""
    def build(page: Page, session: Session) -> Response:
        assert page.ctx is not None
        extra = values(page.ctx) if values else {}
        return page.render(template, **extra)
    return with_page(request, runtime, build, project_id=project_id, action=action)


def legacy_redirect(router: APIRouter, path: str, section: str) -> None:
    """Keep an old project-less page URL working: it opens that page of the project last visited."""
    def redirect(request: Request) -> Response:
        pid = last_project_id(request)
        if pid is None:
            return RedirectResponse("/", status_code=303)
        query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "project_id"])
        return RedirectResponse(project_link(pid, section) + (f"?{query}" if query else ""), status_code=303)
    redirect.__doc__ = f"Old URL {path}: redirect to /p/<project>/{section}."
    router.add_api_route(path, redirect, methods=["GET"], name=f"legacy-{section}")


@router.get("/p/{project_id}/dashboard")
def dashboard(project_id: str, request: Request, runtime: RuntimeDep) -> Response:
    return project_page(request, runtime, project_id, "dashboard.html", "project.read",
                        lambda ctx: {"panels": build_panels(ctx)})


@router.get("/p/{project_id}")
def project_root(project_id: str) -> Response:
    return RedirectResponse(project_link(project_id), status_code=303)


@router.get("/p/{project_id}/settings")
def settings_page(project_id: str, request: Request, runtime: RuntimeDep) -> Response:
    def values(ctx: ProjectContext) -> dict[str, Any]:
        return {"members": list_members(ctx), "can_manage": ctx.allows("members.manage"),
                "roles": grantable_roles(ctx.role),
                "extra_sections": build_sections(ctx)}
    return project_page(request, runtime, project_id, "settings.html", "members.read", values)


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


@router.get("/p/{project_id}/admin")
def admin_page(project_id: str, request: Request, runtime: RuntimeDep, action: str | None = None,
               actor: str | None = None, since: str | None = None, until: str | None = None) -> Response:
    def values(ctx: ProjectContext) -> dict[str, Any]:
        stmt = select(AuditEvent).where(AuditEvent.project_id == ctx.project_id)
        if action:
            stmt = stmt.where(AuditEvent.action.startswith(action, autoescape=True))
        if actor:
            stmt = stmt.where(AuditEvent.actor_label.contains(actor, autoescape=True))
        start, end = _day(since), _day(until)
        if start:
            stmt = stmt.where(AuditEvent.created_at >= datetime.combine(start, time.min).astimezone())
        if end:
            stmt = stmt.where(AuditEvent.created_at < datetime.combine(end + timedelta(days=1), time.min)
                              .astimezone())
        total = ctx.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        events = ctx.session.scalars(stmt.order_by(AuditEvent.created_at.desc()).limit(200)).all()
        telemetry = None
        if ctx.allows("telemetry.read"):
            telemetry = ctx.session.scalars(select(TelemetryEvent).where(TelemetryEvent.project_id == ctx.project_id)
                                            .order_by(TelemetryEvent.created_at.desc()).limit(50)).all()
        params = {k: v for k, v in {"project_id": str(ctx.project_id), "action": action, "actor": actor,
                                     "format": "csv"}.items() if v}
        return {"events": events, "total": total, "telemetry": telemetry,
                "filters": {"action": action, "actor": actor, "since": since, "until": until},
                "csv_href": f"/api/audit?{urlencode(params)}"}
    return project_page(request, runtime, project_id, "admin.html", "audit.read", values)


for _path, _section in (("/dashboard", "dashboard"), ("/settings", "settings"), ("/admin", "admin")):
    legacy_redirect(router, _path, _section)


@dashboard_panel(order=90)
def recent_activity(ctx: ProjectContext) -> Panel | None:
    """The last few audit events of the project."""
    events = ctx.session.scalars(select(AuditEvent).where(AuditEvent.project_id == ctx.project_id)
                                 .order_by(AuditEvent.created_at.desc()).limit(6)).all()
    return Panel(id="activity", title="Recent activity", empty="Nothing yet.",
                 rows=[Row(text=e.action, meta=f"{e.actor_label} · {e.created_at:%Y-%m-%d %H:%M}") for e in events])

