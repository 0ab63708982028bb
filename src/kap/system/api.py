"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from kap import __version__
from kap.core.deps import RuntimeDep
from kap.core.routes import AnswerInThread
from kap.core.schemas import Ok

router = APIRouter(tags=["system"], route_class=AnswerInThread)


class Health(Ok):
    version: str


class Readiness(BaseModel):
    ok: bool
    version: str
    # Each probe answers its own fields beside `ok` (domains register theirs at start).
    checks: dict[str, dict[str, Any]]


@router.get("/healthz")
def healthz() -> Health:
    """The process is alive."""
    return Health(version=__version__)


@router.get("/readyz", response_model=Readiness)
def readyz(runtime: RuntimeDep) -> Readiness | JSONResponse:
    """Database reachable and migrated, storage writable, jobs running."""
    checks = {name: probe() for name, probe in runtime.readiness_checks().items()}
    ok = all(c["ok"] for c in checks.values())
    body = Readiness(ok=ok, version=__version__, checks=checks)
    return body if ok else JSONResponse(body.model_dump(mode="json"), status_code=503)
