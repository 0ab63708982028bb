"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from kap import __version__
from kap.core.deps import RuntimeDep

router = APIRouter(tags=["system"])


@router.get("/healthz")
def healthz() -> dict[str, Any]:
    """The process is alive."""
    return {"ok": True, "version": __version__}


@router.get("/readyz", response_model=None)
def readyz(runtime: RuntimeDep) -> dict[str, Any] | JSONResponse:
    """Database reachable and migrated, storage writable, jobs running."""
    checks = {name: probe() for name, probe in runtime.readiness_checks().items()}
    ok = all(c["ok"] for c in checks.values())
    body = {"ok": ok, "version": __version__, "checks": checks}
    return body if ok else JSONResponse(body, status_code=503)
