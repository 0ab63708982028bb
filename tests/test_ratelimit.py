"""Rate limits: exactly RATE_LIMIT_MAX pass, then 429 with Retry-After, shared through Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from kap.core.db import Database
from kap.core.models import TelemetryEvent
from kap.core.ratelimit import client_address
from tests.conftest import free_port

REDIS_URL = os.environ.get("KAP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def test_exactly_max_requests_pass_then_429(make_client: Any, factory: Any, db: Database) -> None:
    client = make_client(rate_limit_max=5, rate_limit_window_sec=60)
    org = factory.org()
    headers = {"X-Dev-User": str(factory.user(org, "owner"))}
    codes = [client.get("/api/me", headers=headers).status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    limited = client.get("/api/me", headers=headers)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["code"] == "rate_limited"
    with db.service_session() as s:
        row = s.scalar(select(TelemetryEvent).where(TelemetryEvent.request_id == limited.json()["request_id"]))
    assert row is not None
    assert row.kind == "rate_limited"
    assert row.status == 429
    other = {"X-Dev-User": str(factory.user(org, "member"))}
    assert client.get("/api/me", headers=other).status_code == 200  # budgets are per user


def test_a_route_taking_the_caller_and_the_session_spends_one_hit(make_client: Any, factory: Any) -> None:
    client = make_client(rate_limit_max=3, rate_limit_window_sec=60)
    headers = {"X-Dev-User": str(factory.user(factory.org(), "owner"))}
    codes = [client.get("/api/projects", headers=headers).status_code for _ in range(4)]  # identity + session
    assert codes == [200] * 3 + [429]


def test_anonymous_routes_are_limited_per_address(make_client: Any) -> None:
    client = make_client(rate_limit_max=3)
    codes = [client.post("/api/auth/magic-link", json={"email": "a@example.com"}).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_forwarded_for_is_trusted_only_from_trusted_proxies() -> None:
    assert client_address("10.0.0.5", "1.2.3.4", []) == "10.0.0.5"
    assert client_address("10.0.0.5", "1.2.3.4", ["10.0.0.0/8"]) == "1.2.3.4"
    assert client_address("10.0.0.5", "6.6.6.6, 1.2.3.4, 10.0.0.7", ["10.0.0.0/8"]) == "1.2.3.4"
    assert client_address("8.8.8.8", "1.2.3.4", ["10.0.0.0/8"]) == "8.8.8.8"




def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(100):
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not start")


@pytest.mark.slow
def test_two_api_processes_share_one_budget_through_redis(settings: Any, factory: Any, tmp_path: Path) -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError:
        pytest.fail(f"Redis is required at {REDIS_URL}")
    env = {**os.environ, "KAP_DATABASE_URL": settings.database_url, "KAP_DATA_DIR": str(tmp_path),
           "KAP_REDIS_URL": REDIS_URL, "RATE_LIMIT_MAX": "6", "RATE_LIMIT_WINDOW_SEC": "120", "DEV_AUTH": "1",
           "KAP_AUTO_MIGRATE": "0", "KAP_LOG_LEVEL": "WARNING"}
    ports = [free_port(), free_port()]
    procs = [subprocess.Popen([sys.executable, "-m", "kap", "serve", "--port", str(p)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for p in ports]
    try:
        for port, proc in zip(ports, procs, strict=True):
            _wait(f"http://127.0.0.1:{port}/healthz", proc)
        headers = {"X-Dev-User": str(factory.user(factory.org(), "owner"))}
        codes = [httpx.get(f"http://127.0.0.1:{ports[i % 2]}/api/me", headers=headers).status_code
                 for i in range(8)]
        assert codes == [200] * 6 + [429, 429]
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


def test_an_in_memory_window_opens_at_the_first_hit_and_reopens_after_its_length() -> None:
    import time_machine

    from kap.core.ratelimit import MemoryWindows

    windows = MemoryWindows()
    with time_machine.travel(1_800_000_000, tick=False) as clock:
        assert [windows.hit("user:a", 2, 60) for _ in range(3)] == [None, None, 1_800_000_060]
        assert windows.hit("user:b", 2, 60) is None  # per key
        clock.shift(59)
        assert windows.hit("user:a", 2, 60) == 1_800_000_060
        clock.shift(1)
        assert windows.hit("user:a", 2, 60) is None
