"""Test fixtures: one real database per run (SQLite or PostgreSQL), factories, clients.

`KAP_TEST_DB=postgresql` runs the suite on a fresh PostgreSQL database created for
the run (KAP_TEST_PG_URL names the server; trust auth as user postgres by default).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from kap.app import create_app
from kap.core.db import Database
from kap.core.migrate import migrate
from kap.core.models import Org, OrgMember, Project, ProjectMember, User
from kap.core.runtime import Runtime
from kap.core.settings import Settings, load_settings

TEST_DB = os.environ.get("KAP_TEST_DB", "sqlite")
PG_ADMIN_URL = os.environ.get("KAP_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
FIXTURES = Path(__file__).parent / "fixtures"

# Settings come from these fixtures only, never from the developer's shell.
for _name in list(os.environ):
    if _name.startswith(("KAP_", "MAILGUN_", "SUPABASE_")) and _name not in ("KAP_TEST_DB", "KAP_TEST_PG_URL"):
        os.environ.pop(_name)
for _name in ("DEV_AUTH", "INTERNAL_API_BEARER", "RATE_LIMIT_MAX", "RATE_LIMIT_WINDOW_SEC", "DIGEST_TEST_EMAIL"):
    os.environ.pop(_name, None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_pg = pytest.mark.skip(reason="PostgreSQL only (KAP_TEST_DB=postgresql)")
    for item in items:
        if "postgres_only" in item.keywords and TEST_DB != "postgresql":
            item.add_marker(skip_pg)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def s3_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server on loopback, spoken to over HTTP exactly as production speaks to S3."""
    binary = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    proc = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_http(url, proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _wait_for_http(url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


def _pg_url(dbname: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{dbname}"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if TEST_DB == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'kap.db'}"
        return
    name = f"kap_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_url(name)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def base_settings(database_url: str, data_dir: Path) -> dict[str, Any]:
    return {
        "kap_env": "test",
        "dev_auth": True,
        "kap_database_url": database_url,
        "kap_data_dir": data_dir,
        "rate_limit_max": 100_000,
        "rate_limit_window_sec": 60,
        "kap_jwt_secret": "test-secret-" + "x" * 32,
        "internal_api_bearer": "internal-" + "y" * 32,
        "kap_public_url": "http://testserver",
        "kap_embeddings": "off",  # the same answers whether or not kap[semantic] is installed
    }


@pytest.fixture(scope="session")
def settings(base_settings: dict[str, Any]) -> Settings:
    s = load_settings(**base_settings)
    migrate(s)
    return s


@pytest.fixture(scope="session")
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime.build(settings)
    yield rt
    rt.close()


@pytest.fixture(scope="session")
def app(runtime: Runtime) -> Any:
    return create_app(runtime=runtime)


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def make_client(settings: Settings, base_settings: dict[str, Any]) -> Iterator[Callable[..., TestClient]]:
    """A client for an app built with other settings over the same database."""
    made: list[tuple[TestClient, Runtime]] = []

    def factory(**overrides: Any) -> TestClient:
        s = load_settings(**{**base_settings, **overrides})
        rt = Runtime.build(s)
        c = TestClient(create_app(runtime=rt), raise_server_exceptions=False)
        c.__enter__()
        made.append((c, rt))
        return c

    yield factory
    for c, rt in made:
        c.__exit__(None, None, None)
        rt.close()


@pytest.fixture(scope="session")
def db(runtime: Runtime) -> Database:
    return runtime.db


def outbox_messages(data_dir: Path, to: str) -> list[EmailMessage]:
    """Every .eml in the outbox addressed to `to`, oldest first."""
    found = []
    for path in sorted((data_dir / "outbox").glob("*.eml"), key=lambda p: p.stat().st_mtime_ns):
        msg = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        assert isinstance(msg, EmailMessage)
        if str(msg["To"]) == to:
            found.append(msg)
    return found


def dev(user: uuid.UUID, org: uuid.UUID | None = None, role: str = "owner") -> dict[str, str]:
    """Dev-auth headers for a user."""
    headers = {"X-Dev-User": str(user), "X-Dev-Role": role}
    if org is not None:
        headers["X-Dev-Org"] = str(org)
    return headers


@dataclass
class World:
    """Two orgs; org 1 has projects A (one user per role) and B; org 2 has project C."""

    org1: uuid.UUID
    org2: uuid.UUID
    project_a: uuid.UUID
    project_b: uuid.UUID
    project_c: uuid.UUID
    users: dict[str, uuid.UUID] = field(default_factory=dict)

    def h(self, who: str, role: str = "owner") -> dict[str, str]:
        """Headers acting as a named user (the role caps, never raises, their real one)."""
        return dev(self.users[who], None, role)


class Factory:
    """Creates tenants straight through the service engine."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def org(self, name: str = "Org") -> uuid.UUID:
        org_id = uuid.uuid4()
        with self.db.service_transaction() as s:
            s.add(Org(id=org_id, name=name))
        return org_id

    def user(self, org: uuid.UUID | None = None, org_role: str = "member", email: str | None = None) -> uuid.UUID:
        uid = uuid.uuid4()
        with self.db.service_transaction() as s:
            s.add(User(id=uid, email=email or f"{uid.hex[:12]}@example.com"))
            s.flush()
            if org is not None:
                s.add(OrgMember(org_id=org, user_id=uid, role=org_role))
        return uid

    def project(self, org: uuid.UUID, name: str = "Project") -> uuid.UUID:
        pid = uuid.uuid4()
        with self.db.service_transaction() as s:
            s.add(Project(id=pid, org_id=org, name=name))
        return pid

    def member(self, org: uuid.UUID, project: uuid.UUID, user: uuid.UUID, role: str) -> None:
        with self.db.service_transaction() as s:
            s.add(ProjectMember(org_id=org, project_id=project, user_id=user, role=role))


@pytest.fixture(scope="session")
def factory(db: Database) -> Factory:
    return Factory(db)


@pytest.fixture
def world(factory: Factory) -> World:
    org1, org2 = factory.org("Org One"), factory.org("Org Two")
    a, b, c = factory.project(org1, "A"), factory.project(org1, "B"), factory.project(org2, "C")
    w = World(org1=org1, org2=org2, project_a=a, project_b=b, project_c=c)
    w.users["org_owner"] = factory.user(org1, "owner")
    w.users["org_admin"] = factory.user(org1, "admin")
    for role in ("owner", "admin", "pm", "lead", "member"):
        uid = factory.user(org1, "member")
        factory.member(org1, a, uid, role)
        w.users[role] = uid
    w.users["b_member"] = factory.user(org1, "member")
    factory.member(org1, b, w.users["b_member"], "owner")
    w.users["outsider"] = factory.user(org2, "owner")
    factory.member(org2, c, w.users["outsider"], "owner")
    return w


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One Chromium for every browser test of the run: Playwright's sync API allows one instance at a time."""
    from playwright.sync_api import sync_playwright

    from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is required at {CHROMIUM} (Debian package chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    yield ctx
    ctx.close()
