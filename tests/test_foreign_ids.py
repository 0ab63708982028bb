"""Project A's routes called with another project's ids: the same 404 as an unknown id, nothing changed.

Project B (same org) and project C (another org) hold one row of every kind. Every route
that takes an id in its path or query is called in project A, as every role that reaches
A, with B's and C's ids: the answer must be exactly the one an unknown id gets (404 for a
role the route allows, the choke point's 403 below it), and no row of B or C may change.
Routes are discovered from the app; an id parameter the sweep does not know fails it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from kap.core.db import Base, Database
from kap.core.permissions import ACTIONS, role_allows
from kap.web.render import PROJECT_COOKIE
from tests.conftest import Factory, World
from tests.tenant_rows import seed_every_table
from tests.test_access_matrix import CASES, RouteCase, _all_params
from tests.test_web_shell import signed_in

# Path or query parameter -> the kind of object it names.
ID_KINDS = {"artifact_id": "artifacts", "stage_id": "stages", "request_id": "signoff_requests", "item_id": "raid_items",
            "user_id": "user", "org_id": "org", "backup_key": "backup_key"}
NOT_IDS = {"project_id", "target_project_id", "token"}  # the project itself (the choke point) and signed tokens
FIXED = {"page": "1"}  # path parameters that are not ids: a fixed valid value
ROLES = ("owner", "admin", "pm", "lead", "member", "org_owner", "org_admin")
ORG_ROLES = {"org_owner": "owner", "org_admin": "admin"}
# A valid body, so the id is what the route decides on (not a 422 for the body).
BODIES: dict[str, Any] = {
    "PATCH /api/projects/{project_id}/members/{user_id}": {"role": "member"},
    "PATCH /api/orgs/{org_id}": {"project_creators": "members"},
    "PATCH /api/stages/{stage_id}": {"title": "Renamed"},
    "PUT /api/stages/{stage_id}/documents": {"artifact_ids": []},
    "POST /api/stages/{stage_id}/signoff-requests": {"email_to": "signer@example.com"},
    "POST /api/stages/{stage_id}/decision": {"decision": "approve", "name": "A Signer"},
    "POST /api/ocr/resolve": {"mode": "text", "text": "Pasted text"},
    "POST /api/backups/restore": {"target": "new"},
    "PATCH /api/raid/{item_id}": {"title": "Renamed"},
    "POST /api/raid/{item_id}/comments": {"body": "A comment"},
}
EXTRA_QUERY: dict[str, dict[str, str]] = {
    "POST /api/backups/store-and-reingest": {"artifact_name": "artifacts/x.pdf"},
}


@dataclass
class Tenant:
    org: uuid.UUID
    project: uuid.UUID
    user: uuid.UUID
    ids: dict[str, uuid.UUID]
    backup_key: str


def _id_params(case: RouteCase) -> list[tuple[str, str]]:
    """(name, 'path' or 'query') of every id the route takes."""
    out = []
    for where, kind in (("path", "path_params"), ("query", "query_params")):
        for param in _all_params(case.route.dependant, kind):
            if param.name in NOT_IDS or param.name in FIXED:
                continue
            uuid_typed = "uuid" in str(param.field_info.annotation).lower()
            if where == "path" or uuid_typed or param.name in ID_KINDS:
                out.append((param.name, where))
    return out


SWEPT = [c for c in CASES if _id_params(c)]


def test_every_id_parameter_is_known_to_the_sweep() -> None:
    unknown = {(c.id, name) for c in SWEPT for name, _ in _id_params(c) if name not in ID_KINDS}
    assert unknown == set(), "add these id parameters to ID_KINDS so foreign ids are swept"
    assert len(SWEPT) >= 20


@pytest.fixture
def tenants(world: World, factory: Factory) -> dict[str, Tenant]:
    out = {}
    for name, org, project, user in (("a", world.org1, world.project_a, world.users["owner"]),
                                     ("b", world.org1, world.project_b, world.users["b_member"]),
                                     ("c", world.org2, world.project_c, world.users["outsider"])):
        ids = seed_every_table(factory.db, org, project, user, name)
        with factory.db.service_session() as s:
            from kap.backups.models import BackupRun

            key = s.scalar(select(BackupRun.key).where(BackupRun.project_id == project))
        assert key is not None
        out[name] = Tenant(org, project, user, ids, key)
    return out


def _value(kind: str, tenant: Tenant | None, world: World) -> str:
    """The id of one kind in a tenant (None: an id that names nothing)."""
    if tenant is None:
        if kind == "backup_key":
            return f"backups/{world.org1}/{uuid.uuid4()}/20260101.zip"
        return str(uuid.uuid4())
    if kind == "user":
        return str(tenant.user)
    if kind == "org":
        return str(tenant.org)
    if kind == "backup_key":
        return tenant.backup_key
    return str(tenant.ids[kind])


def _request(client: TestClient, browser: Callable[[str], TestClient], case: RouteCase, world: World,
             who: str, values: dict[str, str]) -> tuple[int, str]:
    path, query = case.path, {"project_id": str(world.project_a)}
    query.update(EXTRA_QUERY.get(case.id, {}))
    for name, where in _id_params(case):
        if where == "path":
            path = path.replace("{" + name + "}", values[name])
        else:
            query[name] = values[name]
    path = path.replace("{project_id}", str(world.project_a))
    for name, value in FIXED.items():
        path = path.replace("{" + name + "}", value)
    kwargs: dict[str, Any] = {"params": query, "headers": world.h(who)}
    if case.method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = BODIES.get(case.id, {})
    if not case.path.startswith("/api/"):  # pages know only a signed-in session
        client = browser(who)
        client.cookies.set(PROJECT_COOKIE, str(world.project_a))
        kwargs["headers"] = {}
    response = client.request(case.method, path, follow_redirects=False, **kwargs)
    if response.status_code in (302, 303) and "/login" in response.headers.get("location", ""):
        raise AssertionError(f"{case.id} as {who}: the page asked to sign in")
    return response.status_code, _normalised(response, values)


def _normalised(response: Any, values: dict[str, str]) -> str:
    text = response.text
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        if isinstance(body, dict):
            body.pop("request_id", None)
        text = json.dumps(body, sort_keys=True)
    for value in values.values():
        text = text.replace(value, "<ID>")
    return text


def _snapshot(db: Database, projects: list[uuid.UUID]) -> str:
    """A digest of every row of the given projects, and of every user and org membership."""
    digest = hashlib.sha256()
    with db.service_session() as s:
        for table in Base.metadata.sorted_tables:
            if "project_id" in table.c:
                stmt = select(table).where(table.c.project_id.in_(projects))
            elif table.name == "projects":
                stmt = select(table).where(table.c.id.in_(projects))
            elif table.name in ("users", "org_members", "orgs"):
                stmt = select(table)
            else:
                continue
            rows = sorted(repr(tuple(row)) for row in s.execute(stmt))
            digest.update(f"{table.name}:{rows}".encode())
    return digest.hexdigest()


def _names_project(case: RouteCase) -> bool:
    return any(p.name == "project_id" for kind in ("path_params", "query_params")
               for p in _all_params(case.route.dependant, kind))


def _statuses(case: RouteCase, who: str) -> set[int]:
    """404 where the caller's role may use the route, the choke point's 403 below it. A page
    answers with the page it shows for an unknown id (a 404 page, or 200 with "not found" in it)."""
    if case.action is not None and not role_allows(ORG_ROLES.get(who, who), case.action):
        return {403}
    return {404} if case.path.startswith("/api/") else {200, 303, 404}


@pytest.mark.parametrize("case", SWEPT, ids=lambda c: c.id)
def test_foreign_ids_get_the_unknown_id_answer_and_change_nothing(
        app: Any, client: TestClient, world: World, tenants: dict[str, Tenant], db: Database,
        case: RouteCase) -> None:
    params = _id_params(case)
    browsers: dict[str, TestClient] = {}

    def browser(who: str) -> TestClient:
        if who not in browsers:
            browsers[who] = signed_in(app, world.users[who])
        return browsers[who]

    before = _snapshot(db, [world.project_b, world.project_c])
    mixes: list[tuple[str, dict[str, Tenant | None]]] = []
    for source in ("b", "c"):
        if source == "b" and any(ID_KINDS[n] == "org" for n, _ in params):
            continue  # B's org is A's own org
        mixes.append((source, {n: tenants[source] for n, _ in params}))
        if len(params) > 1:  # A's own parent object, the foreign child
            mixes.append((f"a+{source}", {n: tenants["a"] if i == 0 else tenants[source]
                                          for i, (n, _) in enumerate(params)}))
    calls = 0
    for who in ROLES:
        for label, owners in mixes:
            if who in ORG_ROLES and label == "b" and not _names_project(case):
                continue  # a link without a project: org owners and admins do reach B
            foreign = {n: _value(ID_KINDS[n], owners[n], world) for n, _ in params}
            unknown = {n: (foreign[n] if owners[n] is tenants["a"] else _value(ID_KINDS[n], None, world))
                       for n, _ in params}
            got = _request(client, browser, case, world, who, foreign)
            expected = _request(client, browser, case, world, who, unknown)
            assert got == expected, f"{who} with {label}'s ids: {got} != unknown id {expected}"
            assert got[0] in _statuses(case, who), f"{who} with {label}'s ids: {got}"
            calls += 1
    assert calls >= len(ROLES)
    assert _snapshot(db, [world.project_b, world.project_c]) == before, "a foreign-id call changed a row"


def test_the_sweep_uses_actions_from_the_permissions_table() -> None:
    assert all(c.action is None or c.action in ACTIONS for c in SWEPT)
