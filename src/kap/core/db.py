"""Engines, sessions and the column types every model shares.

Two engines: the *app* engine runs user requests (on PostgreSQL as a role without
BYPASSRLS, with ``kap.user_id`` set per transaction), the *service* engine runs
trusted work (authentication look-ups, demo data, schedules).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import JSON, DateTime, MetaData, Uuid, create_engine, event, text
from sqlalchemy.engine import Connection, Dialect, Engine, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

from kap.core.errors import DbNotReady
from kap.core.settings import Settings

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every engine (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return as_utc(value)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        # One Python call a value: the decorator's own way wraps `process_result_value` (and on
        # SQLite the parse of the stored text) in one more, on every timestamp of every row read.
        # On SQLite the text is parsed as UTC at once (the same value, a tenth of the time).
        parse: Any = self.impl_instance.result_processor(dialect, coltype)
        if parse is None:
            return as_utc
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def from_text(value: str | None) -> datetime | None:
            if value is None:
                return None
            try:  # the stored text names no zone: read it as UTC (`replace(tzinfo=)` costs ten times this)
                return datetime.fromisoformat(value + "+00:00")
            except ValueError:
                return as_utc(parse(value))
        return from_text


def as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class IdText(TypeDecorator[str]):
    """An id column read as the text its JSON shows (`uuid.UUID`'s form), for a list that
    serialises its rows as read (`type_coerce(Model.id, IdText)`): on SQLite the stored hex is
    cut into groups rather than parsed into a `uuid.UUID` and printed again."""

    impl = Uuid
    cache_ok = True

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.name == "sqlite":
            return _hex_text
        return _uuid_text


def _hex_text(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) != 32:  # not the 32 hex digits `Uuid` stores
        return str(uuid.UUID(value))
    return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}".lower()


def _uuid_text(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


class ListText(TypeDecorator[list[Any]]):
    """A JSON list column read for a list of many rows (`type_coerce(Model.pages, ListText)`): the
    empty list most rows hold is answered without a JSON parse (a third of a row's reading on SQLite)."""

    impl = JSON
    cache_ok = True

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        parse: Any = self.impl_instance.result_processor(dialect, coltype)
        if dialect.name != "sqlite" or parse is None:
            return parse

        def read(value: str | None) -> list[Any] | None:
            return [] if value == "[]" else parse(value)
        return read


_WROTE = "kap_wrote"


@event.listens_for(Session, "after_flush")
def _mark_written(session: Session, _context: Any) -> None:
    session.info[_WROTE] = True


@event.listens_for(Session, "after_transaction_end")
def _clear_written(session: Session, transaction: Any) -> None:
    if transaction.parent is None:
        session.info.pop(_WROTE, None)


def has_written(session: Session) -> bool:
    """Whether the session's current transaction has sent any write to the database."""
    return bool(session.info.get(_WROTE)) or bool(session.new or session.dirty or session.deleted)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_savepoint_writes(conn: Any, _name: str) -> None:
    """A savepoint outside a transaction begins one that holds the write lock.

    SQLite's SAVEPOINT would otherwise begin a deferred transaction: its reads pin a
    snapshot, and its first write then fails at once (SQLITE_BUSY, no busy wait) when
    another connection wrote meanwhile, as the jobs that follow an upload do. Holding the
    lock from the savepoint on makes that other writer wait its turn instead.
    """
    if not conn.connection.dbapi_connection.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """Create an engine with Kap's connection settings for SQLite or PostgreSQL."""
    if url.startswith("sqlite"):
        # A pool as large as the request threads' concurrency, so no request opens (and sets the
        # pragmas of) a fresh overflow connection only to close it after.
        pool: dict[str, Any] = {} if url in ("sqlite://", "sqlite:///:memory:") else \
            {"pool_size": max(pool_size, 1), "max_overflow": pool_size}
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10}, **pool)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "savepoint", _sqlite_savepoint_writes)
        # SQLite begins lazily; BEGIN IMMEDIATE-free deferred mode is fine with WAL.
        return engine
    if pool_size == 0:
        return create_engine(url, poolclass=NullPool)
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800,
                           connect_args={"connect_timeout": 5})
    _ping_when_idle(engine)
    return engine


PING_AFTER_IDLE = 5.0  # seconds a pooled connection may rest before it is checked at checkout
_RESTED_SINCE = "kap_rested_since"


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled PostgreSQL connection at checkout only if it rested a while.

    `pool_pre_ping` would cost a round trip on every request; a connection handed back
    milliseconds ago is as alive as the one that just answered. One that rested longer
    (the database may have restarted meanwhile) is pinged, and replaced if it is dead.
    A connection that breaks anyway fails its request and invalidates the whole pool.
    """
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _rest(_dbapi_conn: Any, record: Any) -> None:
        record.info[_RESTED_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        rested = record.info.pop(_RESTED_SINCE, None)
        if rested is None or time.monotonic() - rested < PING_AFTER_IDLE:
            return
        try:
            dialect.do_ping(dbapi_conn)
        except Exception as exc:  # the pool retries with a fresh connection
            raise DisconnectionError("pooled connection is gone") from exc


LOOP_READS_NAME = "kap loop reads"  # their application_name, as `pg_stat_activity` shows it


class LoopReads:
    """Reads of one statement each on the event loop, over psycopg's async connections (PostgreSQL).

    A route whose whole work is one read (the project GET: its access check) would otherwise hop
    to a worker thread and through a session of the engine; under load the hop waited for the
    GIL longer than the read took. Here the RLS settings and the statement leave in one pipeline
    in autocommit, one implicit transaction up to its Sync (as `joined_begin(alone=True)` sends
    them), while the loop serves the other requests. The connections belong to one event loop:
    a new loop (a test client's) starts its own.
    """

    def __init__(self, url: str, *, role: str | None, rls: bool, size: int) -> None:
        self._url = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._role, self._rls, self._size = role, rls, max(size, 1)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None
        self._idle: list[psycopg.AsyncConnection[Any]] = []

    async def first(self, user_id: uuid.UUID, sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The first row `sql` gives as `user_id` (under row-level security when on); DbNotReady when
        the database cannot be reached."""
        rows = await self.rows(user_id, sql, params)
        return rows[0] if rows else None

    async def rows(self, user_id: uuid.UUID, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Every row `sql` gives as `user_id`, as `first` reads them."""
        async with self._slots_of(asyncio.get_running_loop()):
            while True:
                conn, pooled = await self._connection()
                try:
                    row = await self._read(conn, user_id, sql, params)
                except psycopg.OperationalError as exc:
                    _close_now(conn)
                    if pooled:  # the server closed a resting connection: once more on a fresh one
                        continue
                    raise DbNotReady("the database is not reachable") from exc
                except BaseException:
                    _close_now(conn)  # failed or cancelled mid-way: its state is unknown, it is not reused
                    raise
                self._rest(conn)
                return row

    async def _read(self, conn: psycopg.AsyncConnection[Any], user_id: uuid.UUID, sql: str,
                    params: dict[str, Any]) -> list[tuple[Any, ...]]:
        async with conn.pipeline():
            if self._rls:
                await conn.execute(*rls_settings(self._role, str(user_id)))
            cursor = await conn.execute(sql, params)
        return await cursor.fetchall()

    def _slots_of(self, loop: asyncio.AbstractEventLoop) -> asyncio.Semaphore:
        with self._lock:
            if loop is not self._loop or self._slots is None:  # a new loop: the old one's connections go
                self._close_idle()
                self._loop, self._slots = loop, asyncio.Semaphore(self._size)
            return self._slots

    async def _connection(self) -> tuple[psycopg.AsyncConnection[Any], bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        try:
            return await psycopg.AsyncConnection.connect(self._url, autocommit=True, connect_timeout=5,
                                                         application_name=LOOP_READS_NAME), False
        except psycopg.OperationalError as exc:
            raise DbNotReady("the database is not reachable") from exc

    def _rest(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            _close_now(conn)
            return
        with self._lock:
            if asyncio.get_running_loop() is self._loop:
                self._idle.append(conn)
                return
        _close_now(conn)  # taken on a loop the reads have since left

    def _close_idle(self) -> None:
        for conn in self._idle:
            _close_now(conn)
        self._idle = []

    def dispose(self) -> None:
        """Close the resting connections (from any thread: no await)."""
        with self._lock:
            self._close_idle()


_LOOP_READS = "kap_loop_reads"
_PG_TEXT: dict[int, tuple[Any, str, dict[str, Any]]] = {}


def loop_reads(session: Session) -> LoopReads | None:
    """The `LoopReads` of the database an app session belongs to (PostgreSQL), else None."""
    reads: LoopReads | None = session.info.get(_LOOP_READS)
    return reads


def pg_text(statement: Any, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A statement built once (a module's) as the SQL text psycopg runs (compiled on first use),
    and `params` with the values the statement holds itself (an `IN` list's)."""
    known = _PG_TEXT.get(id(statement))
    if known is None or known[0] is not statement:
        from sqlalchemy.dialects import postgresql  # noqa: PLC0415  (only PostgreSQL reads on the loop)

        compiled = statement.compile(dialect=postgresql.psycopg.dialect())
        held = {name: bind.value for bind, name in compiled.bind_names.items() if bind.value is not None}
        known = _PG_TEXT.setdefault(id(statement), (statement, str(compiled), held))
    return known[1], {**known[2], **params}


def rls_settings(role: str | None, uid: str) -> tuple[str, dict[str, str]]:
    """The statement that opens an app transaction under row-level security: the app role (unless
    the login is that role already) and the caller's id, both local to the transaction."""
    if role:
        return ("select set_config('role', %(role)s, true), set_config('kap.user_id', %(uid)s, true)",
                {"role": role, "uid": uid})
    return "select set_config('kap.user_id', %(uid)s, true)", {"uid": uid}


def _close_now(conn: psycopg.AsyncConnection[Any]) -> None:
    """Close a connection at once, without awaiting (its loop may be gone, or cancelling)."""
    conn.pgconn.finish()


class Database:
    """The app and service engines of one Kap process."""

    def __init__(self, settings: Settings, *, rls: bool = True) -> None:
        self.settings = settings
        self.is_postgres = settings.is_postgres
        if not self.is_postgres:
            settings.kap_data_dir.mkdir(parents=True, exist_ok=True)
        self.service_engine = make_engine(settings.database_url)
        self.rls = rls and self.is_postgres
        if self.rls and settings.kap_app_database_url:
            self.app_engine = make_engine(settings.kap_app_database_url)
            self._set_role = False
        else:
            self.app_engine = self.service_engine
            self._set_role = self.rls
        # Single reads on the event loop (`LoopReads`), as the app engine's login.
        app_url = settings.kap_app_database_url if self.rls and settings.kap_app_database_url else settings.database_url
        self.loop_reads = LoopReads(app_url,
                                    role=settings.kap_app_db_role if self._set_role else None, rls=self.rls,
                                    size=10) if self.is_postgres else None
        self._service_sessions = sessionmaker(self.service_engine, expire_on_commit=False)
        self._app_sessions = sessionmaker(self.app_engine, expire_on_commit=False)
        if self.rls:
            event.listen(self._app_sessions, "after_begin", self._rls_begin)
            event.listen(self.app_engine, "do_execute", _execute_joining_begin)
        self.schema_ready = False

    def dispose(self) -> None:
        if self.loop_reads is not None:
            self.loop_reads.dispose()
        self.service_engine.dispose()
        if self.app_engine is not self.service_engine:
            self.app_engine.dispose()

    def app_session(self, user_id: uuid.UUID | None) -> Session:
        """A session for user work: RLS applies on PostgreSQL from its first statement."""
        session = self._app_sessions()
        if self.rls:
            session.info[_RLS_USER] = str(user_id) if user_id else ""
        if self.loop_reads is not None:
            session.info[_LOOP_READS] = self.loop_reads
        return session

    def service_session(self) -> Session:
        """A session for trusted service work: sees every tenant."""
        return self._service_sessions()

    @contextmanager
    def service_transaction(self) -> Iterator[Session]:
        """Run service work in one transaction, committed on success."""
        with self.service_session() as session, session.begin():
            yield session

    @contextmanager
    def service_scope(self, session: Session | None = None) -> Iterator[Session]:
        """Trusted work during a request: inside its transaction on SQLite, its own on PostgreSQL.

        SQLite has one writer at a time and no row-level security, so a second writing
        connection from the same request would wait on (or be refused by) the first one;
        joining the request's transaction through a savepoint is both safe and equal in power.
        """
        if session is not None and not self.is_postgres:
            with session.begin_nested():
                yield session
            return
        with self.service_transaction() as own:
            yield own

    def ping(self) -> None:
        """Raise DbNotReady when the database cannot be reached."""
        try:
            with self.service_engine.connect() as conn:
                conn.execute(text("select 1"))
        except (OperationalError, DBAPIError) as exc:
            raise DbNotReady("the database is not reachable") from exc

    def _rls_begin(self, session: Session, _transaction: Any, connection: Any) -> None:
        """First thing in every app transaction: the app role (unless the app login is one
        already) and the caller's id, both local to the transaction. psycopg sends its BEGIN
        and waits for it first; the settings then leave in a pipeline, alone or (`joined_begin`)
        with the statement that follows."""
        uid = session.info.get(_RLS_USER)
        if uid is None:
            return
        sql, params = rls_settings(self.settings.kap_app_db_role if self._set_role else None, uid)
        raw = connection.connection.dbapi_connection
        if _PIPELINES and isinstance(raw, psycopg.Connection):
            join = session.info.get(_JOIN_NEXT)
            if join:  # `joined_begin`: the next statement leaves with them
                if join is _ALONE:  # no BEGIN: the pipeline up to its Sync is one implicit transaction
                    raw.autocommit = True
                pipeline = raw.pipeline()
                pipeline.__enter__()
                raw.execute(sql, params)
                _OPEN_PIPELINES[id(raw)] = pipeline
                return
            with raw.pipeline():
                raw.execute(sql, params)
        else:
            connection.exec_driver_sql(sql, params)


@contextmanager
def joined_begin(session: Session, *, alone: bool = False) -> Iterator[Connection]:
    """The session's connection, for the one statement that opens its transaction.

    With row-level security on PostgreSQL, the RLS settings and that statement leave in one
    pipeline and come back in one round trip, in that order, so the settings are in force for
    the statement. Elsewhere it is `session.connection()`.

    `alone`: the statement is a read and the whole transaction; the caller ends it right after
    (`session.commit()`). Then no BEGIN goes ahead and no COMMIT follows: the settings and the
    statement are one implicit transaction that ends at the pipeline's Sync, one round trip
    where there were three. A statement sent later on the session opens a transaction as usual.
    """
    fresh = not session.in_transaction()
    if fresh:
        session.info[_JOIN_NEXT] = _ALONE if alone else True
    try:
        connection = session.connection()
    finally:
        session.info.pop(_JOIN_NEXT, None)
    raw = connection.connection.dbapi_connection
    try:
        yield connection
    finally:
        pipeline = _OPEN_PIPELINES.pop(id(raw), None) if fresh and _OPEN_PIPELINES else None
        try:
            if pipeline is not None:  # no statement was sent: the settings go alone
                pipeline.__exit__(None, None, None)
        finally:
            if fresh and alone and isinstance(raw, psycopg.Connection) and raw.autocommit:
                if raw.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                    raw.autocommit = False  # the pipeline is closed and synced: nothing to wait for
                else:  # a connection that failed mid-way does not go back to the pool
                    connection.invalidate()


def _execute_joining_begin(cursor: Any, statement: str, parameters: Any, context: Any) -> bool | None:
    """Run a statement in the pipeline `_rls_begin` left open for it, then close the pipeline:
    one Sync, and the results (the settings, then the statement's rows) in one round trip."""
    pipeline = _OPEN_PIPELINES.pop(id(cursor.connection), None) if _OPEN_PIPELINES else None
    if pipeline is None:
        return None  # the dialect executes as usual
    try:
        cursor.execute(statement, parameters)
    except BaseException as exc:
        pipeline.__exit__(type(exc), exc, exc.__traceback__)
        raise
    pipeline.__exit__(None, None, None)
    return True


_RLS_USER = "kap_rls_user"


def under_rls(session: Session) -> bool:
    """Whether row-level security applies to the session: an app session of a database with RLS.

    Known from the session itself, without asking the server. (A query that guessed wrong would still
    be filtered by the policies, only slower.)"""
    return _RLS_USER in session.info


_JOIN_NEXT = "kap_join_next"
_ALONE = "alone"  # `joined_begin(alone=True)`: the statement is the whole transaction
# The pipeline `_rls_begin` left open for the next statement, by the id of its psycopg connection.
_OPEN_PIPELINES: dict[int, Any] = {}
_PIPELINES = psycopg.Pipeline.is_supported()
