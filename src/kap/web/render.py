"""Page rendering: one Jinja2 environment, a full page or a fragment, and the page identity."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from kap import __version__
from kap.core.deps import ProjectContext, read_credentials, request_address, resolve_project
from kap.core.errors import DbNotReady, Forbidden, KapError, NotFound
from kap.core.links import document_link, project_link
from kap.core.permissions import ACTIONS, ROLE_LABELS, Action
from kap.core.runtime import Runtime
from kap.core.security import Identity
from kap.web.registry import project_zone

TEMPLATE_DIRS = [Path(__file__).parent / "templates"]
PROJECT_COOKIE = "kap_project"
_env: Environment | None = None


def environment() -> Environment:
    """The shared template environment; domains add their folders to TEMPLATE_DIRS."""
    global _env
    paths = [str(p) for p in TEMPLATE_DIRS]
    if _env is None:
        _env = Environment(loader=FileSystemLoader(paths),
                           autoescape=select_autoescape(["html", "xml"]), trim_blocks=True, lstrip_blocks=True)
        _env.filters["when"] = when
    elif isinstance(_env.loader, FileSystemLoader) and _env.loader.searchpath != paths:
        _env.loader = FileSystemLoader(paths)  # a domain added its folder after the first use
    return _env


def zone_of(ctx: ProjectContext) -> str:
    """The project's time zone as its settings name it."""
    return project_zone(ctx)


def when(value: datetime | str | None, zone: str | None = None) -> str:
    """A moment as people read it: `YYYY-MM-DD HH:MM` and the zone (UTC unless one is given)."""
    if not value:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if zone:
        return f"{moment.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M} {zone}"
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


@dataclass
class Page:
    """What every page template receives."""

    request: Request
    runtime: Runtime
    identity: Identity | None
    ctx: ProjectContext | None = None
    db_ready: bool = True
    _zone: str | None = None

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        """Render a full page, or only its `content` block when the request asks for a fragment."""
        fragment = self.request.headers.get("hx-request") == "true" or self.request.query_params.get("fragment")
        values = {"page": self, "version": __version__, "dev_auth": self.runtime.settings.dev_auth, **values}
        tmpl = environment().get_template(template)
        if fragment and "content" in tmpl.blocks:
            body = "".join(tmpl.blocks["content"](tmpl.new_context(values)))
        else:
            body = tmpl.render(values)
        headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                   "Referrer-Policy": "same-origin",
                   "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                              "script-src 'self'; frame-ancestors 'none'; base-uri 'none'"}
        return HTMLResponse(body, status_code=status, headers=headers)

    @property
    def zone(self) -> str:
        """The project's time zone (looked up once per page), UTC outside a project."""
        if self.ctx is None:
            return "UTC"
        if self._zone is None:
            self._zone = zone_of(self.ctx)
        return self._zone

    def when(self, value: datetime | str | None) -> str:
        """A moment in the project's time zone, with the zone's name."""
        return when(value, self.zone)

    def link(self, section: str = "dashboard") -> str:
        """A page of the project this page shows: `/p/<project>/<section>`."""
        assert self.ctx is not None
        return project_link(self.ctx.project_id, section)

    def doc_link(self, artifact_id: object, page: int | None = None) -> str:
        """A document of the project this page shows, at a page when one is given."""
        assert self.ctx is not None
        return document_link(self.ctx.project_id, str(artifact_id), page)

    @property
    def csrf(self) -> str:
        return self.identity.csrf_token if self.identity and self.identity.csrf_token else ""


def page_identity(request: Request, runtime: Runtime) -> Identity | None:
    """The signed-in user of a page (session cookie), or None."""
    creds = read_credentials(request)
    creds.bearer = None
    creds.dev_user = creds.dev_org = creds.dev_role = None
    creds.method = "GET"  # page GETs; writes go through the API with the CSRF header
    if creds.session is None:
        return None
    try:
        return runtime.identity.resolve(creds)
    except KapError:
        return None


def last_project_id(request: Request) -> uuid.UUID | None:
    """The project named by `?project_id=`, else the one last visited (only old links rely on it)."""
    raw = request.query_params.get("project_id") or request.cookies.get(PROJECT_COOKIE)
    try:
        return uuid.UUID(raw) if raw else None
    except ValueError:
        return None


PageBuilder = Callable[[Page, Session], Response]


def with_page(request: Request, runtime: Runtime, build: PageBuilder, *, project_id: str | None = None,
              action: Action = Action.PROJECT_READ) -> Response:
    """Open a page (identity, database, the project in its path), build it, and turn failures into pages.

    A project page authorises like the API: `resolve_project` then `ProjectContext.require(action)`; an
    unreachable project is the 404 page, a role too low the 403 page that names the role needed.
    """
    try:
        runtime.ensure_schema()
        identity = page_identity(request, runtime)
    except (DbNotReady, OperationalError, DBAPIError):
        return _down_page(request, runtime)
    if identity is None:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
    page = Page(request=request, runtime=runtime, identity=identity)
    try:
        with runtime.db.app_session(identity.user_id) as session:
            if project_id is not None:
                try:
                    page.ctx = resolve_project(session, identity, uuid.UUID(project_id),
                                               ip=request_address(request, runtime),
                                               user_agent=request.headers.get("user-agent"))
                except (ValueError, NotFound):
                    return page.render("missing.html", status=404)
                try:
                    page.ctx.require(action)
                except Forbidden as exc:
                    return _remember(page.render("forbidden.html", status=403, reason=exc.message,
                                                 needs=ROLE_LABELS[ACTIONS[action]]), page.ctx)
                page.ctx = replace(page.ctx, read_only=page.ctx.archived)  # no change controls on it
            response = build(page, session)
            session.commit()
            return _remember(response, page.ctx) if page.ctx else response
    except (OperationalError, DBAPIError):
        runtime.db.schema_ready = False
        return _down_page(request, runtime)


def _remember(response: Response, ctx: ProjectContext) -> Response:
    """Note the project last visited, so that old links without one still land somewhere sensible."""
    response.set_cookie(PROJECT_COOKIE, str(ctx.project_id), httponly=True, samesite="lax", path="/")
    return response


def _down_page(request: Request, runtime: Runtime) -> Response:
    page = Page(request=request, runtime=runtime, identity=None, db_ready=False)
    return page.render("down.html", status=503)
