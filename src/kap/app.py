"""The FastAPI application: one runtime, the edge middleware, every domain's routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from kap import __version__
from kap.accounts.api import router as accounts_router
from kap.accounts.branding import router as branding_router
from kap.admin.api import router as admin_router
from kap.ask.api import install_probe as install_ask_probe
from kap.ask.api import router as ask_router
from kap.ask.pages import router as ask_pages
from kap.backups.api import router as backups_router
from kap.backups.pages import router as backups_pages
from kap.comms.api import router as comms_router
from kap.comms.pages import router as comms_pages
from kap.core import jobs
from kap.core.http import EdgeMiddleware, RequestIdFilter, install_error_handlers
from kap.core.migrate import migrate
from kap.core.openapi import document_statuses
from kap.core.runtime import Runtime
from kap.core.settings import Settings, get_settings
from kap.documents import models as _documents_models  # noqa: F401  (registers the tables)
from kap.documents.api import router as documents_router
from kap.documents.pages import router as documents_pages
from kap.orgs import pages as _org_pages  # noqa: F401  (registers the org settings section)
from kap.orgs.api import router as orgs_router
from kap.projects.api import router as projects_router
from kap.qa.api import router as qa_router
from kap.raid.api import router as raid_router
from kap.raid.pages import router as raid_pages
from kap.sentinel.api import router as sentinel_router
from kap.stages.api import router as stages_router
from kap.stages.pages import router as stages_pages
from kap.stages.public import router as signoff_router
from kap.system.api import router as system_router
from kap.web.pages import router as web_router

log = logging.getLogger("kap")
STATIC_DIR = Path(__file__).parent / "web" / "static"

# The order routes were declared in: where two routes could take the same path, the earlier wins.
ROUTERS = [system_router, qa_router, accounts_router, branding_router, projects_router, orgs_router, admin_router,
           sentinel_router, web_router, documents_router, stages_router, signoff_router, comms_router,
           backups_router, ask_router, raid_router,
           documents_pages, ask_pages, stages_pages, backups_pages, comms_pages, raid_pages]
# Served first, because FastAPI tries routes one by one and these take most requests. Moving them
# changes no path's route (tests/test_app_routes.py checks every route against the declared order).
BUSIEST = [projects_router, documents_router]


def serving_order() -> list[APIRouter]:
    """The routers in the order the app tries them: the busiest first, then the declared order."""
    return BUSIEST + [router for router in ROUTERS if router not in BUSIEST]


def configure_logging(level: str) -> None:
    """Log lines carry the request id."""
    root = logging.getLogger()
    if any(isinstance(f, RequestIdFilter) for h in root.handlers for f in h.filters):
        return
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """Build the app for the given settings (the environment's by default)."""
    settings = settings or (runtime.settings if runtime else get_settings())
    runtime = runtime or Runtime.build(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.auto_migrate:
            try:
                migrate(settings)
            except Exception:
                log.exception("automatic migration failed; requests answer 503 db_not_ready")
        jobs.bind_runtime(runtime)
        try:
            yield
        finally:
            jobs.unbind_runtime(runtime)
            runtime.close()

    app = FastAPI(title="Kap", version=__version__, lifespan=lifespan)
    app.state.runtime = runtime
    install_error_handlers(app)
    install_ask_probe(runtime)
    app.add_middleware(EdgeMiddleware, max_json=settings.kap_max_json_kb * 1024,
                       max_upload=settings.kap_max_upload_mb * 1024 * 1024)
    for router in serving_order():
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    document_statuses(app)
    return app


def app_factory() -> FastAPI:
    """Entry point for uvicorn --factory."""
    settings = get_settings()
    configure_logging(settings.kap_log_level)
    _warm_extractors()
    return create_app(settings)


def _warm_extractors() -> None:
    """Start the extraction fork server in the background, so the first upload need not wait for it."""
    import threading

    from kap.documents import sandbox

    threading.Thread(target=sandbox.warm, name="kap-warm-extractors", daemon=True).start()
