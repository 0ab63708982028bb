"""Authenticated, project-scoped GET through Kap against a bare FastAPI route in the same process.

Figures are medians of alternating rounds, reported as ratios so a noisy machine
affects both sides alike: Kap / bare on SQLite, on PostgreSQL with RLS, and
PostgreSQL with RLS on / off.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import median, out, postgres_url, sqlite_url
from kap.app import create_app
from kap.core.migrate import migrate
from kap.core.runtime import Runtime
from kap.core.settings import load_settings
from kap.demo import create_demo

ROUNDS = 7
PER_ROUND = 300


def _app(url: str, data_dir: Path, *, rls: bool) -> tuple[Any, Any, str]:
    settings = load_settings(kap_database_url=url, kap_data_dir=data_dir, dev_auth=True, kap_env="test",
                             rate_limit_max=10_000_000)
    migrate(settings)
    ids = create_demo(settings)
    runtime = Runtime.build(settings, rls=rls)
    app = create_app(runtime=runtime)
    with runtime.db.service_session() as s:
        from kap.core.models import Project

        project = s.get(Project, ids.project_a)
        assert project is not None
        body = {"id": str(project.id), "org_id": str(project.org_id), "name": project.name, "role": "member",
                "created_at": project.created_at.isoformat(), "archived_at": None}

    @app.get("/bench/bare")
    def bare() -> dict[str, Any]:
        return body

    headers = {"X-Dev-User": str(ids.member), "X-Dev-Org": str(ids.org), "X-Dev-Role": "member"}
    return app, runtime, f"/api/projects/{ids.project_a}", headers  # type: ignore[return-value]


async def _round(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> float:
    start = time.perf_counter()
    for _ in range(PER_ROUND):
        response = await client.get(path, headers=headers)
        assert response.status_code == 200, response.text
    return PER_ROUND / (time.perf_counter() - start)


async def _measure(app: Any, path: str, headers: dict[str, str]) -> tuple[float, float]:
    transport = httpx.ASGITransport(app=app)
    kap_rps, bare_rps = [], []
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        await _round(client, path, headers)  # warm-up
        for _ in range(ROUNDS):
            kap_rps.append(await _round(client, path, headers))
            bare_rps.append(await _round(client, "/bench/bare", {}))
    return median(kap_rps), median(bare_rps)


def _run(url: str, data_dir: Path, rls: bool) -> tuple[float, float]:
    app, runtime, path, headers = _app(url, data_dir, rls=rls)  # type: ignore[misc]
    try:
        return asyncio.run(_measure(app, path, headers))
    finally:
        runtime.close()


def main() -> None:
    out(f"authenticated project-scoped GET vs bare FastAPI route, median of {ROUNDS} rounds x {PER_ROUND} requests")
    with tempfile.TemporaryDirectory() as tmp:
        with sqlite_url(Path(tmp)) as url:
            sq_kap, sq_bare = _run(url, Path(tmp), rls=False)
        out(f"sqlite      kap {sq_kap:8.0f} req/s   bare {sq_bare:8.0f} req/s   kap/bare {sq_kap / sq_bare:.2f}")
        with postgres_url() as url:
            pg_kap, pg_bare = _run(url, Path(tmp), rls=True)
            off_kap, off_bare = _run(url, Path(tmp), rls=False)
        out(f"postgresql  kap {pg_kap:8.0f} req/s   bare {pg_bare:8.0f} req/s   "
            f"kap/bare {pg_kap / pg_bare:.2f}  (RLS on)")
        out(f"postgresql  kap {off_kap:8.0f} req/s   bare {off_bare:8.0f} req/s   kap/bare {off_kap / off_bare:.2f}"
            "  (RLS off)")
        out(f"postgresql RLS on/off {(pg_kap / pg_bare) / (off_kap / off_bare):.2f}   "
            f"sqlite/postgresql(RLS) {(sq_kap / sq_bare) / (pg_kap / pg_bare):.2f}")
