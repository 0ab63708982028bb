"""PostgreSQL row-level security: the second wall under the app's own scoping."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text

from kap.core.db import Database
from tests.conftest import World

pytestmark = pytest.mark.postgres_only


def test_every_table_has_rls_enabled_and_forced(db: Database) -> None:
    with db.service_session() as s:
        rows = s.execute(text(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname <> 'alembic_version'"
        )).all()
    assert len(rows) >= 10
    unprotected = [name for name, enabled, forced in rows if not (enabled and forced)]
    assert unprotected == []


def test_app_role_cannot_bypass_rls_and_owns_nothing(db: Database) -> None:
    with db.service_session() as s:
        bypass = s.scalar(text("SELECT rolbypassrls FROM pg_roles WHERE rolname = 'kap_app'"))
        owned = s.scalar(text("SELECT count(*) FROM pg_tables WHERE tableowner = 'kap_app'"))
    assert bypass is False
    assert owned == 0


def test_unscoped_query_as_app_role_sees_only_the_callers_tenants(db: Database, world: World) -> None:
    with db.app_session(world.users["member"]) as s, s.begin():
        projects = set(s.scalars(text("SELECT id FROM projects")).all())
        members = set(s.scalars(text("SELECT DISTINCT project_id FROM project_members")).all())
        audit = s.scalar(text("SELECT count(*) FROM audit_events WHERE project_id = :p"),
                         {"p": world.project_c})
        role = s.scalar(text("SELECT current_user"))
    assert role == "kap_app"
    assert projects == {world.project_a}
    assert members == {world.project_a}
    assert audit == 0


def test_org_admin_sees_every_project_of_their_org_only(db: Database, world: World) -> None:
    with db.app_session(world.users["org_admin"]) as s, s.begin():
        projects = set(s.scalars(text("SELECT id FROM projects")).all())
    assert world.project_a in projects
    assert world.project_b in projects
    assert world.project_c not in projects


def test_missing_user_setting_sees_nothing(db: Database, world: World) -> None:
    with db.app_session(None) as s, s.begin():
        assert s.scalar(text("SELECT count(*) FROM projects")) == 0
        assert s.scalar(text("SELECT count(*) FROM users")) == 0


def test_writes_into_a_foreign_project_are_refused(db: Database, world: World) -> None:
    from sqlalchemy.exc import ProgrammingError

    with pytest.raises(ProgrammingError, match="row-level security"), db.app_session(world.users["owner"]) as s, \
            s.begin():
        s.execute(text("INSERT INTO project_members (id, org_id, project_id, user_id, role, created_at) "
                       "VALUES (:id, :org, :p, :u, 'owner', now())"),
                  {"id": uuid.uuid4(), "org": world.org2, "p": world.project_c, "u": world.users["owner"]})


def test_audit_log_is_append_only_for_the_app_role(db: Database, client: Any, world: World) -> None:
    from sqlalchemy.exc import ProgrammingError

    client.patch(f"/api/projects/{world.project_a}", json={"name": "Renamed"}, headers=world.h("owner"))
    with pytest.raises(ProgrammingError, match="permission denied"), db.app_session(world.users["owner"]) as s, \
            s.begin():
        s.execute(text("DELETE FROM audit_events WHERE project_id = :p"), {"p": world.project_a})


def test_login_secrets_are_invisible_to_the_app_role(db: Database, world: World) -> None:
    from sqlalchemy.exc import ProgrammingError

    with pytest.raises(ProgrammingError), db.app_session(world.users["owner"]) as s, s.begin():
        s.execute(text("SELECT count(*) FROM user_sessions")).scalar()


def _protocol_trace(db: Database, path: Any) -> Any:
    """libpq's trace of the app connections checked out from now on, written to `path`."""
    from sqlalchemy import event

    sink = path.open("w")

    def trace(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        dbapi_connection.pgconn.trace(sink.fileno())

    def untrace(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.pgconn.untrace()  # before `sink` closes and its descriptor is reused

    def stop() -> None:
        event.remove(db.app_engine, "checkout", trace)
        event.remove(db.app_engine, "checkin", untrace)

    event.listen(db.app_engine, "checkout", trace)
    event.listen(db.app_engine, "checkin", untrace)
    return sink, stop


def test_reach_query_leaves_with_the_rls_settings(db: Database, world: World, tmp_path: Any) -> None:
    """The settings and the reach query share one Sync (one round trip), settings first, so row-level
    security is in force for the query: a member reaches the project, a stranger does not."""
    from kap.core.scope import reach

    sink, stop = _protocol_trace(db, tmp_path / "trace")
    try:
        with db.app_session(world.users["member"]) as s:
            found = reach(s, world.users["member"], world.project_a)
            setting = s.scalar(text("SELECT current_setting('kap.user_id', true)"))
            s.commit()
    finally:
        stop()
        sink.close()
    with db.app_session(world.users["outsider"]) as s:
        assert reach(s, world.users["outsider"], world.project_a) is None
        s.commit()
    assert found is not None
    assert found.scope.project_id == world.project_a
    assert setting == str(world.users["member"])
    trace = (tmp_path / "trace").read_text()
    settings, query = trace.index("set_config('kap.user_id'"), trace.index("LEFT OUTER JOIN project_members")
    assert settings < query
    assert "\tF\t4\tSync" not in trace[settings:query]  # no Sync (no wait for an answer) between them


def _visible_language(db: Database) -> str:
    with db.service_session() as s:
        return str(s.scalar(text("SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang "
                                 "WHERE p.proname = 'kap_visible_project_ids'")))


def test_one_connection_serving_callers_in_turn_shows_each_their_own_projects(db: Database, world: World) -> None:
    """The visible-projects function keeps its plan for the session: it must not keep its answer."""
    assert _visible_language(db) == "plpgsql"
    role = db.settings.kap_app_db_role
    seen = []
    with db.app_engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        for user in (world.users["member"], world.users["org_admin"], world.users["outsider"],
                     world.users["member"], None):
            cursor = raw.cursor()
            cursor.execute("SELECT set_config('role', %s, true), set_config('kap.user_id', %s, true)",
                           (role, str(user) if user else ""))
            cursor.execute("SELECT id FROM projects")
            seen.append({row[0] for row in cursor.fetchall()})
            raw.rollback()
    assert seen[0] == {world.project_a}
    assert {world.project_a, world.project_b} <= seen[1]
    assert world.project_c not in seen[1]
    assert seen[2] == {world.project_c}
    assert seen[3] == {world.project_a}
    assert seen[4] == set()


def test_the_visible_projects_function_goes_back_and_forth_with_its_migration(db: Database, runtime: Any,
                                                                             world: World) -> None:
    from alembic import command

    from kap.core.migrate import alembic_config

    cfg = alembic_config(runtime.settings.database_url, runtime.settings.kap_app_db_role)
    db.dispose()
    command.downgrade(cfg, "0004_mail_outbox")
    try:
        assert _visible_language(db) == "sql"
        with db.app_session(world.users["member"]) as s, s.begin():
            assert set(s.scalars(text("SELECT id FROM projects")).all()) == {world.project_a}
    finally:
        db.dispose()
        command.upgrade(cfg, "heads")
    assert _visible_language(db) == "plpgsql"
    with db.app_session(world.users["member"]) as s, s.begin():
        assert set(s.scalars(text("SELECT id FROM projects")).all()) == {world.project_a}


def test_a_read_that_is_the_whole_transaction_is_one_round_trip_under_rls(db: Database, world: World) -> None:
    """`joined_begin(alone=True)`: no BEGIN, no COMMIT; the settings and the statement are one implicit
    transaction, so row-level security is in force for it (an unscoped query sees the caller's projects)."""
    from kap.core.db import joined_begin

    seen = []
    for who in ("member", "org_admin"):
        with db.app_session(world.users[who]) as s:
            with joined_begin(s, alone=True) as connection:
                seen.append({row[0] for row in connection.execute(text("SELECT id FROM projects"))})
            s.commit()
            # A later statement on the same session opens a transaction as usual, settings and all.
            with s.begin():
                assert s.scalar(text("SELECT current_user")) == "kap_app"
                assert s.scalar(text("SELECT count(*) FROM projects WHERE id = :p"), {"p": world.project_c}) == 0
    assert seen[0] == {world.project_a}
    assert {world.project_a, world.project_b} <= seen[1]
    assert world.project_c not in seen[1]


def _loop_trace(db: Database, path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """libpq's trace of the event loop's connections (`LoopReads`) used from now on, written to `path`."""
    reads = db.loop_reads
    assert reads is not None
    sink = path.open("w")
    take, rest = reads._connection, reads._rest

    async def traced() -> Any:
        conn, pooled = await take()
        if not sink.closed:
            conn.pgconn.trace(sink.fileno())
        return conn, pooled

    def untraced(conn: Any) -> None:
        conn.pgconn.untrace()  # before `sink` closes and its descriptor is reused
        rest(conn)

    monkeypatch.setattr(reads, "_connection", traced)
    monkeypatch.setattr(reads, "_rest", untraced)
    return sink


def test_a_project_get_is_one_round_trip_and_leaves_the_pool_transactional(db: Database, client: Any,
                                                                            world: World, tmp_path: Any,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The project GET reads the reach on the event loop and answers: one Sync, no BEGIN, no COMMIT,
    and nothing through the engine's pool, whose connections stay transactional, so the next
    request's write commits in a transaction of its own."""
    assert client.get("/api/projects", headers=world.h("member")).status_code == 200  # the schema check, once
    sink, stop = _protocol_trace(db, tmp_path / "pool-trace")
    loop_sink = _loop_trace(db, tmp_path / "trace", monkeypatch)
    try:
        got = client.get(f"/api/projects/{world.project_a}", headers=world.h("member"))
    finally:
        stop()
        sink.close()
        loop_sink.close()
    assert got.status_code == 200, got.text
    assert got.json()["id"] == str(world.project_a)
    assert (tmp_path / "pool-trace").read_text() == ""
    trace = (tmp_path / "trace").read_text()
    assert trace.count("\tF\t4\tSync") == 1, trace
    assert "set_config('role'" in trace, trace
    assert "FROM projects" in trace, trace
    assert "BEGIN" not in trace, trace
    assert "COMMIT" not in trace, trace
    stranger = client.get(f"/api/projects/{world.project_a}", headers=world.h("outsider"))
    assert stranger.status_code == 404, stranger.text
    renamed = client.patch(f"/api/projects/{world.project_a}", json={"name": "Renamed after a read"},
                           headers=world.h("owner"))
    assert renamed.status_code == 200, renamed.text
    again = client.get(f"/api/projects/{world.project_a}", headers=world.h("member"))
    assert again.json()["name"] == "Renamed after a read"
    with db.app_engine.connect() as connection:
        assert connection.connection.dbapi_connection.autocommit is False  # type: ignore[union-attr]


def test_a_read_on_the_loop_runs_under_rls_as_its_caller(db: Database, world: World) -> None:
    """`LoopReads` sends the RLS settings with its statement: the app role, the caller's id, and only
    the caller's rows."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    reads = db.loop_reads
    assert reads is not None
    sql = "SELECT current_user, current_setting('kap.user_id'), (SELECT count(*) FROM projects WHERE id = %(a)s)"

    def read(who: str) -> Any:  # an event loop of its own, in a thread of its own (a test may hold one here)
        return asyncio.run(reads.first(world.users[who], sql, {"a": world.project_a}))

    with ThreadPoolExecutor(1) as pool:
        member, outsider = pool.submit(read, "member").result(), pool.submit(read, "outsider").result()
    assert member == ("kap_app", str(world.users["member"]), 1)
    assert outsider == ("kap_app", str(world.users["outsider"]), 0)


def test_a_resting_loop_connection_the_server_closed_is_replaced(client: Any, db: Database, world: World) -> None:
    from kap.core.db import LOOP_READS_NAME

    assert client.get(f"/api/projects/{world.project_a}", headers=world.h("member")).status_code == 200
    with db.service_session() as s:
        ended = s.scalar(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                              "WHERE datname = current_database() AND application_name = :name"),
                         {"name": LOOP_READS_NAME})
        s.commit()
    assert ended >= 1
    again = client.get(f"/api/projects/{world.project_a}", headers=world.h("member"))
    assert again.status_code == 200, again.text
    assert again.json()["id"] == str(world.project_a)


def test_a_project_get_answers_503_when_its_read_cannot_reach_the_database(client: Any, db: Database, world: World,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from kap.core.db import LoopReads

    assert client.get("/api/projects", headers=world.h("member")).status_code == 200  # the caller is known
    monkeypatch.setattr(db, "loop_reads", LoopReads("postgresql://kap@127.0.0.1:1/kap", role=None, rls=True, size=1))
    got = client.get(f"/api/projects/{world.project_a}", headers=world.h("member"))
    assert got.status_code == 503, got.text
    assert got.json()["error"]["code"] == "db_not_ready"
