"""The job queue: after-commit hand-off, final failures recorded, a real SQLite-backed consumer."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from kap.core import jobs
from kap.core.models import Org, TelemetryEvent
from kap.core.runtime import Runtime
from kap.core.settings import Settings, load_settings

CALLS: list[str] = []
DONE = threading.Event()


@jobs.task(retries=0, retry_delay=0)
def remember(value: str) -> None:
    """Record a value (test job)."""
    CALLS.append(value)
    DONE.set()


def _explode_hook(args: tuple[object, ...], exc: BaseException) -> None:
    CALLS.append(f"hook:{args[0]}:{exc.__class__.__name__}")


@jobs.task(retries=0, retry_delay=0, on_failure=_explode_hook)
def explode(value: str) -> None:
    """Always fail (test job)."""
    raise RuntimeError(f"boom {value}")


@jobs.periodic(cron="*/5 * * * *")
def tick() -> None:
    """A scheduled test job."""


@pytest.fixture(autouse=True)
def bound(runtime: Runtime) -> Iterator[None]:
    CALLS.clear()
    DONE.clear()
    jobs.bind_runtime(runtime)
    yield
    jobs.unbind_runtime(runtime)


def test_job_is_sent_only_after_commit(runtime: Runtime) -> None:
    with runtime.db.service_session() as session:
        session.add(Org(name="jobs org"))
        jobs.enqueue_after_commit(session, remember, "after-commit")
        session.flush()
        assert CALLS == []
        session.commit()
    assert CALLS == ["after-commit"]


def test_job_is_dropped_on_rollback(runtime: Runtime) -> None:
    with runtime.db.service_session() as session:
        session.add(Org(name="rolled back"))
        jobs.enqueue_after_commit(session, remember, "never")
        session.flush()
        session.rollback()
        session.commit()
    assert CALLS == []


def test_only_tasks_can_be_enqueued(runtime: Runtime) -> None:
    with runtime.db.service_session() as session, pytest.raises(TypeError):
        jobs.enqueue_after_commit(session, print, "x")


def test_final_failure_runs_the_hook_and_records_telemetry(runtime: Runtime) -> None:
    marker = uuid.uuid4().hex
    explode(marker)
    assert CALLS == [f"hook:{marker}:RuntimeError"]
    with runtime.db.service_transaction() as session:
        rows = session.scalars(select(TelemetryEvent).where(TelemetryEvent.kind == "job_failed")).all()
    assert any(marker in str(r.details) for r in rows)


def test_bad_cron_is_refused() -> None:
    with pytest.raises(ValueError, match="cron needs 5 fields"):
        jobs.periodic(cron="* * *")


def test_backend_follows_the_settings(tmp_path: Path) -> None:
    assert jobs.backend_name(load_settings(kap_env="test")) == "immediate"
    assert jobs.backend_name(load_settings(kap_env="development", kap_data_dir=tmp_path)) == "sqlite"
    assert jobs.backend_name(load_settings(kap_env="development", kap_redis_url="redis://127.0.0.1:1/0")) == "redis"


def test_a_real_sqlite_queue_and_consumer_run_the_job(settings: Settings, tmp_path: Path) -> None:
    queued = load_settings(**{**settings.model_dump(), "kap_env": "development", "kap_data_dir": tmp_path})
    jobs.configure(queued)
    consumer = None
    try:
        remember("through the queue")
        assert jobs.pending_count() == 1
        consumer = jobs.start_consumer(workers=1, periodic_tasks=False)
        assert DONE.wait(60)
        assert CALLS == ["through the queue"]
        assert (tmp_path / "jobs.db").exists()
    finally:
        if consumer is not None:
            consumer.stop(graceful=True)
        jobs.configure(settings)


def test_every_domain_jobs_module_loads() -> None:
    assert "documents" in jobs.load_all_tasks()


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A real redis-server on a free loopback port."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        import redis

        client = redis.Redis.from_url(url)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                DONE.wait(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_real_redis_queue_and_consumer_run_the_job(settings: Settings, redis_url: str, tmp_path: Path) -> None:
    queued = load_settings(**{**settings.model_dump(), "kap_env": "development", "kap_data_dir": tmp_path,
                              "kap_redis_url": redis_url})
    jobs.configure(queued)
    consumer = None
    try:
        remember("through redis")
        assert jobs.probe() == {"ok": True, "backend": "redis", "pending": 1}
        consumer = jobs.start_consumer(workers=1, periodic_tasks=False)
        assert DONE.wait(60)
        assert CALLS == ["through redis"]
    finally:
        if consumer is not None:
            consumer.stop(graceful=True)
        jobs.configure(settings)


def test_kap_worker_needs_redis() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAP_")}
    result = subprocess.run([sys.executable, "-m", "kap", "worker"], env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 1
    assert "KAP_REDIS_URL" in result.stderr
