"""Background jobs on huey: SQLite-backed by default, Redis-backed with KAP_REDIS_URL.

Domains declare work with `@task(...)` and schedules with `@periodic(cron=...)`
at import time; the queue backend is chosen later, when a process binds its
Runtime (`bind_runtime`). Jobs enqueued inside a database transaction are handed
to the queue only after that transaction commits (`enqueue_after_commit`).

Under `KAP_ENV=test` the queue runs in huey's immediate mode: a job runs in the
calling thread as soon as it is enqueued (after the commit), so tests see its
effect without a consumer.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from huey import Huey, crontab
from huey.api import Task, TaskWrapper
from huey.constants import EmptyData
from huey.consumer import Consumer, Scheduler
from huey.storage import MemoryStorage, RedisStorage, SqliteStorage
from sqlalchemy import event
from sqlalchemy.orm import Session

from kap.core.audit import record_telemetry
from kap.core.owner import owner_tag

if TYPE_CHECKING:
    from kap.core.runtime import Runtime
    from kap.core.settings import Settings

log = logging.getLogger("kap.jobs")

F = TypeVar("F", bound=Callable[..., Any])
FailureHook = Callable[[tuple[Any, ...], BaseException], None]

huey = Huey("kap", results=False, utc=True, storage_class=MemoryStorage)
_failure_hooks: dict[str, FailureHook] = {}
_runtimes: list[Runtime] = []
_backend_key: tuple[str, str] | None = None
_lock = threading.Lock()
_PENDING = "kap_jobs_pending"
TICK_PREFIX = "kap:tick:"
TICK_KEEP = timedelta(hours=1)  # how long a claimed tick is remembered


def task(retries: int = 3, retry_delay: int = 10, *, retry_backoff: float = 2.0,
         on_failure: FailureHook | None = None, timeout: int | None = None) -> Callable[[F], Any]:
    """Declare a background job; arguments must be JSON-able (ids as str, ints)."""
    def decorator(func: F) -> Any:
        wrapper = huey.task(retries=retries, retry_delay=retry_delay, retry_backoff=retry_backoff,
                            timeout=timeout)(func)
        if on_failure is not None:
            _failure_hooks[_task_key(wrapper.task_class)] = on_failure
        return wrapper
    return decorator


def _task_key(task_class: type) -> str:
    """The name huey registers a task under: module.function."""
    return f"{task_class.__module__}.{task_class.__name__}"


def periodic(cron: str, *, retries: int = 0, retry_delay: int = 0) -> Callable[[F], Any]:
    """Declare a scheduled job from a crontab line: minute hour day month day_of_week."""
    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(f"cron needs 5 fields, got {cron!r}")
    minute, hour, day, month, day_of_week = fields
    schedule = crontab(minute=minute, hour=hour, day=day, month=month, day_of_week=day_of_week)

    def decorator(func: F) -> Any:
        return huey.periodic_task(schedule, retries=retries, retry_delay=retry_delay)(func)
    return decorator


def enqueue_after_commit(session: Session, job: Any, *args: Any) -> None:
    """Send `job(*args)` once `session` commits; drop it if the transaction rolls back."""
    if not isinstance(job, TaskWrapper):
        raise TypeError("enqueue_after_commit expects a function decorated with @task")
    pending: list[tuple[TaskWrapper, tuple[Any, ...]]] | None = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = []
        event.listen(session, "after_commit", _send_pending)
        event.listen(session, "after_soft_rollback", _drop_pending)
    pending.append((job, args))


def waits_for_commit(session: Session) -> bool:
    """Whether jobs were enqueued in `session` that its commit sends."""
    return bool(session.info.get(_PENDING))


def _send_pending(session: Session) -> None:
    pending = session.info.get(_PENDING) or []
    session.info[_PENDING] = []
    for job, args in pending:
        try:
            job(*args)
        except Exception:  # the commit stands; a lost hand-off is logged, never raised into the request
            log.exception("could not enqueue %s%r", _task_key(job.task_class), args)


def _drop_pending(session: Session, previous_transaction: Any) -> None:
    if previous_transaction.parent is None:
        session.info[_PENDING] = []


def load_all_tasks() -> list[str]:
    """Import every domain's `jobs` module so a consumer knows all tasks; return their names."""
    package = Path(__file__).resolve().parent.parent
    importlib.import_module("kap.core.recovery")  # the crash-leftover sweep runs on the schedule too
    found = []
    for jobs_file in sorted(package.glob("*/jobs.py")):
        if jobs_file.parent.name != "core":
            importlib.import_module(f"kap.{jobs_file.parent.name}.jobs")
            found.append(jobs_file.parent.name)
    return found


def current_runtime() -> Runtime:
    """The Runtime of this process (built from the environment if none was bound)."""
    if _runtimes:
        return _runtimes[-1]
    from kap.core.runtime import Runtime
    from kap.core.settings import get_settings

    with _lock:
        if not _runtimes:
            bind_runtime(Runtime.build(get_settings()))
    return _runtimes[-1]


def bind_runtime(runtime: Runtime) -> None:
    """Make `runtime` the one jobs run with, and point the queue at its backend."""
    _runtimes.append(runtime)
    configure(runtime.settings)


def unbind_runtime(runtime: Runtime) -> None:
    """Forget a runtime bound earlier (the previous one, if any, is current again)."""
    for i in range(len(_runtimes) - 1, -1, -1):
        if _runtimes[i] is runtime:
            del _runtimes[i]
            break
    if _runtimes:
        configure(_runtimes[-1].settings)


def backend_name(settings: Settings) -> str:
    """'immediate', 'redis' or 'sqlite'."""
    if settings.kap_env == "test":
        return "immediate"
    return "redis" if settings.kap_redis_url else "sqlite"


def configure(settings: Settings, *, immediate: bool | None = None) -> None:
    """Point the queue at the backend the settings choose (idempotent)."""
    global _backend_key
    name = backend_name(settings)
    if immediate is not None:
        name = "immediate" if immediate else ("redis" if settings.kap_redis_url else "sqlite")
    target = ""
    if name == "redis":
        target = settings.kap_redis_url or ""
    elif name == "sqlite":
        target = str(_queue_file(settings))
    key = (name, target)
    if key == _backend_key:
        return
    huey._immediate = name == "immediate"
    if name == "immediate":
        huey.storage = MemoryStorage("kap")
    elif name == "redis":
        huey.storage = RedisStorage("kap", url=settings.kap_redis_url)
    else:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        huey.storage = SqliteStorage("kap", filename=target)
    _backend_key = key


def _queue_file(settings: Settings) -> Path:
    return settings.kap_data_dir.resolve() / "jobs.db"


@huey.post_execute()
def _record_final_failure(job: Task, value: Any, exc: BaseException | None) -> None:
    if exc is None or job.retries:
        return
    name = _task_key(type(job))
    log.error("job %s failed for good: %s", name, exc.__class__.__name__)
    hook = _failure_hooks.get(name)
    if hook is not None:
        try:
            hook(tuple(job.args or ()), exc)
        except Exception:
            log.exception("failure hook of %s raised", name)
    try:
        db = current_runtime().db
    except Exception:
        log.exception("no runtime to record the failure of %s", name)
        return
    record_telemetry(db, kind="job_failed", details={"job": name, "args": [str(a) for a in job.args or ()],
                                                      "error": f"{exc.__class__.__name__}: {exc}"[:500]})


# ---- the schedule, once per tick across every process -----------------------------------------

def tick_key(tick: datetime) -> str:
    return f"{TICK_PREFIX}{tick:%Y%m%dT%H%M}"


def claim_tick(tick: datetime) -> str | None:
    """Claim the schedule's tick (a UTC minute) for this process; None when another claimed it first.

    Every process that runs the schedule (each `kap worker`, or each `kap serve` without Redis)
    checks it once a minute; the first to claim a minute enqueues its jobs, the others skip it.
    The claim lives in the queue's own store: a Redis key with an expiry, or a row of the
    SQLite queue file every process of one data folder shares. Returns who holds the claim.
    """
    key, me = tick_key(tick), owner_tag()
    storage = huey.storage
    if isinstance(storage, RedisStorage):
        won = storage.conn.set(key, me, nx=True, ex=int(TICK_KEEP.total_seconds()))
        return me if won else None
    if isinstance(storage, SqliteStorage):
        if not storage.put_if_empty(key, me.encode()):
            return None
        storage.sql("delete from kv where queue = ? and key like ? and key < ?",
                    (storage.name, f"{TICK_PREFIX}%", tick_key(tick - TICK_KEEP)), commit=True)
        return me
    return me  # the in-memory queue belongs to one process


def tick_holder(tick: datetime) -> str | None:
    """Which process claimed a tick (None if none did, or the claim expired)."""
    storage = huey.storage
    if isinstance(storage, RedisStorage):
        value = storage.conn.get(tick_key(tick))
        return value.decode() if value else None
    data = storage.peek_data(tick_key(tick))
    return None if data is EmptyData or data is None else bytes(data).decode()


def enqueue_due(now: datetime | None = None) -> list[str]:
    """Enqueue the periodic jobs due at this minute if this process claims it; return their names."""
    tick = (now or huey._get_timestamp()).replace(second=0, microsecond=0)
    due = huey.read_periodic(tick)
    if not due:
        return []
    if claim_tick(tick) is None:
        log.info("schedule tick %s already claimed by another process", f"{tick:%Y-%m-%dT%H:%M}")
        return []
    names = [_task_key(type(job)) for job in due]
    log.info("schedule tick %s claimed by %s: %s", f"{tick:%Y-%m-%dT%H:%M}", owner_tag(), ", ".join(names))
    for job in due:
        try:
            huey.enqueue(job)
        except Exception:
            log.exception("could not enqueue periodic job %s", _task_key(type(job)))
    return names


class _ClusterScheduler(Scheduler):
    """huey's scheduler, except that a minute's periodic jobs are enqueued by one process only."""

    def enqueue_periodic_tasks(self, now: datetime | None) -> None:
        enqueue_due(now)


class _Consumer(Consumer):
    scheduler_class = _ClusterScheduler


class _EmbeddedConsumer(_Consumer):
    """A consumer that leaves the process's signal handlers to the web server."""

    def _set_signal_handlers(self) -> None:
        return None


def start_consumer(*, workers: int = 2, periodic_tasks: bool = True, embedded: bool = True) -> Consumer:
    """Start consumer threads for the configured queue and return the consumer (call `.stop()`)."""
    if huey.immediate:
        raise RuntimeError("the queue is in immediate mode; no consumer is needed")
    cls = _EmbeddedConsumer if embedded else _Consumer
    consumer = cls(huey, workers=workers, periodic=periodic_tasks, worker_type="thread",
                   check_worker_health=False)
    if embedded:
        consumer.start()
    return consumer


def pending_count() -> int:
    """How many jobs wait in the queue (0 in immediate mode)."""
    if huey.immediate:
        return 0
    return int(huey.pending_count())


def probe() -> dict[str, Any]:
    """Readiness of the job queue: the backend answers."""
    name = _backend_key[0] if _backend_key else "unconfigured"
    try:
        waiting = pending_count()
    except Exception as exc:
        return {"ok": False, "backend": name, "error": exc.__class__.__name__}
    return {"ok": True, "backend": name, "pending": waiting}
