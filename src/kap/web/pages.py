"""The web shell: sign-in, project picker, dashboard, settings and the admin audit viewer."""

from __future__ import annotations

import hmac
import uuid
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kap.admin.activity import actor_name, details_text, filter_events, people, sentence
from kap.core.deps import ProjectContext, RuntimeDep, limit_anonymous, resolve_org_admin
from kap.core.errors import KapError
from kap.core.links import project_link
from kap.core.login import end_session, open_session, send_login_link, set_session_cookies
from kap.core.models import AuditEvent, TelemetryEvent, User
from kap.core.permissions import ROLE_LABELS, Action, grantable_roles
from kap.core.security import CSRF_COOKIE, SESSION_COOKIE, ensure_user
from kap.projects.service import creation_refusal, list_members, list_projects
from kap.web.registry import Panel, Row, build_panels, build_sections, dashboard_panel, visible_nav
from kap.web.render import Page, environment, last_project_id, page_identity, when, with_page, zone_of

router = APIRouter(include_in_schema=False)
environment().globals["nav_items"] = lambda page: visible_nav(page.ctx) if page.ctx else []
environment().globals["role_label"] = lambda role: ROLE_LABELS.get(role, role)


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
        every = list_projects(session, page.identity, include_archived=True)
        return page.render("home.html", projects=[p for p in every if p.archived_at is None],
                           archived=[p for p in every if p.archived_at is not None],
                           cannot_create=creation_refusal(session, page.identity))
    return with_page(request, runtime, build)


@router.get("/projects/{project_id}/open")
@router.get("/projects/{project_id}")
def open_project(project_id: str) -> Response:
    """Old project links (and links in older mails) open the project's dashboard."""
    return RedirectResponse(project_link(project_id), status_code=303)


def project_page(request: Request, runtime: Any, project_id: str, template: str, action: Action,
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
    return project_page(request, runtime, project_id, "dashboard.html", Action.PROJECT_READ,
                        lambda ctx: {"panels": build_panels(ctx)})


@router.get("/p/{project_id}")
def project_root(project_id: str) -> Response:
    return RedirectResponse(project_link(project_id), status_code=303)


@router.get("/p/{project_id}/settings")
def settings_page(project_id: str, request: Request, runtime: RuntimeDep) -> Response:
    def values(ctx: ProjectContext) -> dict[str, Any]:
        return {"members": list_members(ctx), "can_manage": ctx.allows(Action.MEMBERS_MANAGE),
                "roles": grantable_roles(ctx.role),
                "extra_sections": build_sections(ctx)}
    return project_page(request, runtime, project_id, "settings.html", Action.MEMBERS_READ, values)


AUDIT_PAGE = 200


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _period(since: str | None, until: str | None, zone: str) -> tuple[datetime | None, datetime | None]:
    """From/Until as whole days in the project's time zone (Until includes its day)."""
    tz = ZoneInfo(zone)
    start, end = _day(since), _day(until)
    return (datetime.combine(start, time.min, tz) if start else None,
            datetime.combine(end + timedelta(days=1), time.min, tz) if end else None)


def _telemetry(ctx: ProjectContext) -> list[TelemetryEvent] | None:
    """The project's telemetry, shown to the same people /api/telemetry answers: org owners and admins."""
    try:
        resolve_org_admin(ctx.session, ctx.identity, ctx.org_id)
    except KapError:
        return None
    return list(ctx.session.scalars(select(TelemetryEvent).where(TelemetryEvent.project_id == ctx.project_id)
                                    .order_by(TelemetryEvent.created_at.desc()).limit(50)))


@router.get("/p/{project_id}/admin")
def admin_page(project_id: str, request: Request, runtime: RuntimeDep, action: str | None = None,
               actor: str | None = None, since: str | None = None, until: str | None = None,
               offset: int = 0) -> Response:
    """The audit viewer: events as sentences with names, filters by action, person and period, paged."""
    def values(ctx: ProjectContext) -> dict[str, Any]:
        zone = zone_of(ctx)
        start, end = _period(since, until, zone)
        stmt = filter_events(ctx.session, select(AuditEvent).where(AuditEvent.project_id == ctx.project_id),
                             action=(action or "").strip()[:80] or None, actor=(actor or "").strip()[:320] or None,
                             since=start, until=end)
        total = ctx.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        first = max(0, min(offset, max(total - 1, 0)))
        events = ctx.session.scalars(stmt.order_by(AuditEvent.created_at.desc(), AuditEvent.id)
                                     .offset(first).limit(AUDIT_PAGE)).all()
        names = people(ctx.session, [e.actor_id for e in events] + [e.target_id for e in events])
        rows = [{"when": when(e.created_at, zone), "sentence": sentence(e, names), "who": actor_name(e, names),
                 "action": e.action, "details": details_text(e.details, ids=False)} for e in events]
        filters = {"action": action, "actor": actor, "since": since, "until": until}
        kept = {k: v for k, v in filters.items() if v}
        csv_params = {"project_id": str(ctx.project_id), "format": "csv", "action": action, "actor": actor,
                      "since": start.isoformat() if start else None, "until": end.isoformat() if end else None}
        base = project_link(ctx.project_id, "admin")
        def at(n: int) -> str:
            return f"{base}?{urlencode({**kept, 'offset': n})}"
        return {"rows": rows, "total": total, "first": first, "shown": len(rows), "zone": zone,
                "telemetry": _telemetry(ctx), "filters": filters,
                "prev_href": at(max(first - AUDIT_PAGE, 0)) if first > 0 else None,
                "next_href": at(first + AUDIT_PAGE) if first + AUDIT_PAGE < total else None,
                "csv_href": f"/api/audit?{urlencode({k: v for k, v in csv_params.items() if v})}"}
    return project_page(request, runtime, project_id, "admin.html", Action.AUDIT_READ, values)


for _path, _section in (("/dashboard", "dashboard"), ("/settings", "settings"), ("/admin", "admin")):
    legacy_redirect(router, _path, _section)


@dashboard_panel(order=90, action=Action.AUDIT_READ)
def recent_activity(ctx: ProjectContext) -> Panel | None:
    """The last few audit events of the project, as sentences with people's names."""
    events = ctx.session.scalars(select(AuditEvent).where(AuditEvent.project_id == ctx.project_id)
                                 .order_by(AuditEvent.created_at.desc()).limit(6)).all()
    names = people(ctx.session, [e.actor_id for e in events] + [e.target_id for e in events])
    zone = zone_of(ctx)
    return Panel(id="activity", title="Recent activity", empty="Nothing yet.",
                 rows=[Row(text=sentence(e, names), meta=when(e.created_at, zone)) for e in events])
