"""Everything one Kap process holds: settings, engines, limiter, identity resolver, mailer."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from kap.core.db import Database
from kap.core.errors import DbNotReady
from kap.core.mail import Mailer
from kap.core.migrate import script_heads
from kap.core.ratelimit import RateLimiter
from kap.core.security import IdentityResolver
from kap.core.settings import Settings
from kap.core.storage import Storages, build_storage

Probe = Callable[[], dict[str, Any]]
STATE_MESSAGES = {
    "not_migrated": "the database is not migrated: run `kap migrate`",
    "no_database": "the database named in KAP_DATABASE_URL does not exist: create it (e.g. `createdb`), "
                   "then run `kap migrate`",
    "unreachable": "the database is not reachable",
}


@dataclass
class Runtime:
    settings: Settings
    db: Database
    limiter: RateLimiter
    identity: IdentityResolver
    mailer: Mailer
    storage: Storages
    probes: dict[str, Probe] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def build(cls, settings: Settings, *, rls: bool = True) -> Runtime:
        """Create the runtime for one process from settings."""
        from kap.core import jobs

        db = Database(settings, rls=rls)
        storage = build_storage(settings)
        runtime = cls(settings=settings, db=db, limiter=RateLimiter(settings),
                      identity=IdentityResolver(settings, db), mailer=Mailer(settings, db), storage=storage)
        runtime.probes["storage"] = storage.probe
        runtime.probes["jobs"] = jobs.probe
        return runtime

    def schema_state(self) -> str:
        """'ready', 'not_migrated', 'no_database' or 'unreachable'."""
        try:
            conn = self.db.service_engine.connect()
        except DBAPIError as exc:
            return "no_database" if _is_missing_database(exc) else "unreachable"
        try:
            rows = conn.execute(text("select version_num from alembic_version")).scalars().all()
        except DBAPIError as exc:
            return "not_migrated" if _is_missing_table(exc) else "unreachable"
        finally:
            conn.close()
        return "ready" if set(rows) == script_heads() else "not_migrated"

    def ensure_schema(self) -> None:
        """Raise DbNotReady unless the database is reachable and fully migrated."""
        if self.db.schema_ready:
            return
        with self._lock:
            state = self.schema_state()
            if state == "ready":
                self.db.schema_ready = True
                return
        raise DbNotReady(STATE_MESSAGES.get(state, STATE_MESSAGES["unreachable"]))

    def readiness_checks(self) -> dict[str, Probe]:
        """Named probes; domains add theirs (storage, jobs, search) at start."""
        return {"database": self._probe_database, "data_dir": self._probe_data_dir,
                "rate_limits": self._probe_rate_limits, **self.probes}

    def _probe_database(self) -> dict[str, Any]:
        state = self.schema_state()
        if state == "ready":
            self.db.schema_ready = True
        return {"ok": state == "ready", "state": state, **({"message": STATE_MESSAGES[state]}
                                                           if state in STATE_MESSAGES else {}),
                "engine": "postgresql" if self.db.is_postgres else "sqlite", "rls": self.db.rls}

    def _probe_data_dir(self) -> dict[str, Any]:
        folder = self.settings.kap_data_dir.resolve()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / ".readyz"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            return {"ok": False, "path": str(folder), "error": str(exc)}
        return {"ok": True, "path": str(folder)}

    def _probe_rate_limits(self) -> dict[str, Any]:
        return {"ok": bool(self.limiter.storage.check()), "backend": self.limiter.backend}

    def close(self) -> None:
        self.db.dispose()


def _is_missing_database(exc: DBAPIError) -> bool:
    message = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    return "database" in message and "does not exist" in message


def _is_missing_table(exc: DBAPIError) -> bool:
    message = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    return "no such table" in message or "does not exist" in message
