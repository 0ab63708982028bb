"""Pooled PostgreSQL connections: checked only after resting, replaced when the server dropped them."""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import text

from kap.core import db as kapdb
from kap.core.settings import Settings
from tests.conftest import PG_ADMIN_URL

pytestmark = pytest.mark.postgres_only


def _terminate(pid: int) -> None:
    """Drop one server connection, as a server restart would (the suite's other connections stay)."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        row = admin.execute("select pg_terminate_backend(%s)", (pid,)).fetchone()
        assert row == (True,)


def _backend(engine: kapdb.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("select pg_backend_pid()")).scalar_one())


def test_a_rested_connection_the_server_dropped_is_replaced_without_an_error(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = kapdb.make_engine(settings.database_url, pool_size=1)
    try:
        first = _backend(engine)
        _terminate(first)
        monkeypatch.setattr(kapdb, "PING_AFTER_IDLE", 0.0)  # as if it had rested for a while
        time.sleep(0.05)
        assert _backend(engine) != first  # no error: the ping found it dead and the pool reconnected
    finally:
        engine.dispose()


def test_a_busy_connection_is_reused_without_a_ping_and_a_dropped_one_fails_once(settings: Settings) -> None:
    engine = kapdb.make_engine(settings.database_url, pool_size=1)
    try:
        first = _backend(engine)
        assert _backend(engine) == first  # the same pooled connection
        _terminate(first)
        with pytest.raises(kapdb.OperationalError):
            _backend(engine)  # handed back a moment ago: not pinged, so this request fails ...
        assert _backend(engine) != first  # ... and the pool reconnects for the next one
    finally:
        engine.dispose()
