"""Every registered route, walked as anonymous, other tenant, too-low role and allowed role.

Routes are discovered from the app, so a route added later is covered without editing
this file. A project-scoped route is one that depends on `require(action)`.
"""

from __future__ import annotations

import typing
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from kap.core.deps import ActionDependency, internal_only, require_identity
from kap.core.permissions import ACTIONS, PROJECT_ROLE_RANK, Action, role_below
from tests.conftest import World

# API routes that answer without a user on purpose (they authorise by other means, or not at all).
PUBLIC_API = {"/api/auth/magic-link", "/api/auth/magic-link/consume", "/api/signoff/{token}",
              "/api/signoff/{token}/code", "/api/webhooks/mailgun"}


@dataclass
class RouteCase:
    method: str
    path: str
    route: APIRoute
    action: Action | None
    needs_identity: bool
    internal: bool
    also: tuple[Action, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


def _walk(dependant: Any) -> list[Any]:
    found = [dependant.call]
    for dep in dependant.dependencies:
        found += _walk(dep)
    return found


def _cases() -> list[RouteCase]:
    from kap.app import ROUTERS

    cases = []
    for router in ROUTERS:
        for route in router.routes:
            if not isinstance(route, APIRoute):
                continue
            calls = _walk(route.dependant)
            actions = [c.action for c in calls if isinstance(c, ActionDependency)]
            also = tuple(a for c in calls if isinstance(c, ActionDependency) for a in c.also)
            for method in sorted((route.methods or set()) - {"HEAD", "OPTIONS"}):
                cases.append(RouteCase(method, route.path_format, route, actions[0] if actions else None,
                                       require_identity in calls or bool(actions), internal_only in calls, also))
    return cases


CASES = _cases()


def _params(case: RouteCase, project: uuid.UUID, other: uuid.UUID) -> tuple[str, dict[str, str]]:
    path = case.path
    for param in _all_params(case.route.dependant, "path_params"):
        value = str(project) if param.name == "project_id" else str(uuid.uuid4())
        path = path.replace("{" + param.name + "}", value)
    query: dict[str, str] = {}
    for param in _all_params(case.route.dependant, "query_params"):
        if param.name == "project_id":
            query["project_id"] = str(project)
        elif param.name == "target_project_id":
            query[param.name] = str(other)
        elif param.field_info.is_required():
            query[param.name] = str(uuid.uuid4()) if "uuid" in str(param.field_info.annotation).lower() else "x"
    return path, query


def _all_params(dependant: Any, kind: str) -> list[Any]:
    params = list(getattr(dependant, kind))
    for dep in dependant.dependencies:
        params += _all_params(dep, kind)
    return params


def _call(client: TestClient, case: RouteCase, headers: dict[str, str], project: uuid.UUID,
          other: uuid.UUID) -> Any:
    path, query = _params(case, project, other)
    kwargs: dict[str, Any] = {"params": query, "headers": headers}
    if case.method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = {}
    return client.request(case.method, path, **kwargs)


def _assert_envelope(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert body["ok"] is False
        assert body["error"]["code"]
        assert body["request_id"]


def test_every_api_route_is_authenticated_or_declared_public() -> None:
    assert any(c.action for c in CASES), "no project-scoped routes found"
    open_routes = {c.path for c in CASES if c.path.startswith("/api/") and not (c.needs_identity or c.internal)}
    assert open_routes <= PUBLIC_API, f"undeclared public API routes: {open_routes - PUBLIC_API}"


@pytest.mark.parametrize("case", [c for c in CASES if c.needs_identity], ids=lambda c: c.id)
def test_anonymous_is_refused(client: TestClient, world: World, case: RouteCase) -> None:
    response = _call(client, case, {}, world.project_a, world.project_b)
    assert response.status_code == 401, response.text
    _assert_envelope(response)


@pytest.mark.parametrize("case", [c for c in CASES if c.action], ids=lambda c: c.id)
def test_member_of_another_project_gets_404(client: TestClient, world: World, case: RouteCase) -> None:
    response = _call(client, case, world.h("b_member"), world.project_a, world.project_b)
    assert response.status_code == 404, response.text
    assert response.json()["error"]["message"] == "project not found"
    assert str(world.project_a) not in response.text


@pytest.mark.parametrize("case", [c for c in CASES if c.action], ids=lambda c: c.id)
def test_user_of_another_org_gets_404(client: TestClient, world: World, case: RouteCase) -> None:
    response = _call(client, case, world.h("outsider"), world.project_a, world.project_c)
    assert response.status_code == 404, response.text
    assert response.json()["error"]["message"] == "project not found"


@pytest.mark.parametrize("case", [c for c in CASES if c.action], ids=lambda c: c.id)
def test_unknown_project_gets_the_same_404(client: TestClient, world: World, case: RouteCase) -> None:
    response = _call(client, case, world.h("owner"), uuid.uuid4(), world.project_b)
    assert response.status_code == 404, response.text
    assert response.json()["error"]["message"] == "project not found"


@pytest.mark.parametrize("case", [c for c in CASES if c.action and role_below(ACTIONS[c.action])],
                         ids=lambda c: c.id)
def test_too_low_role_gets_403(client: TestClient, world: World, case: RouteCase) -> None:
    assert case.action
    low = role_below(ACTIONS[case.action])
    assert low
    response = _call(client, case, world.h(low), world.project_a, world.project_b)
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize("case", [c for c in CASES if c.action and role_below(ACTIONS[c.action])],
                         ids=lambda c: c.id)
def test_dev_role_header_never_raises_a_role(client: TestClient, world: World, case: RouteCase) -> None:
    assert case.action
    low = role_below(ACTIONS[case.action])
    assert low
    response = _call(client, case, world.h(low, role="owner"), world.project_a, world.project_b)
    assert response.status_code == 403, response.text


@pytest.mark.parametrize("case", [c for c in CASES if c.action], ids=lambda c: c.id)
def test_allowed_role_gets_past_the_checks(client: TestClient, world: World, case: RouteCase) -> None:
    assert case.action
    role = ACTIONS[case.action]
    response = _call(client, case, world.h(role), world.project_a, world.project_b)
    _assert_envelope(response)
    assert response.status_code not in (401, 403), response.text
    if response.status_code == 404:
        assert response.json()["error"]["message"] != "project not found"


@pytest.mark.parametrize("case", [c for c in CASES if c.action], ids=lambda c: c.id)
def test_org_owner_and_admin_reach_every_project_of_the_org(client: TestClient, world: World,
                                                            case: RouteCase) -> None:
    assert case.action
    response = _call(client, case, world.h("org_owner"), world.project_a, world.project_b)
    _assert_envelope(response)
    assert response.status_code not in (401, 403), response.text
    response = _call(client, case, world.h("org_admin"), world.project_a, world.project_b)
    _assert_envelope(response)
    assert response.status_code != 401
    assert response.status_code != 403 or ACTIONS[case.action] == "owner", response.text
    if response.status_code == 404:
        assert response.json()["error"]["message"] != "project not found"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_no_route_answers_500_to_garbage(client: TestClient, world: World, case: RouteCase) -> None:
    path = case.path
    for param in _all_params(case.route.dependant, "path_params"):
        path = path.replace("{" + param.name + "}", "not-a-uuid%00..%2f")
    response = client.request(case.method, path, params={"project_id": "nope", "target_project_id": "1"},
                              headers=world.h("owner"), content=b"\x00\xff{" if case.method != "GET" else None)
    assert response.status_code < 500, response.text


SECOND = [(c, extra) for c in CASES for extra in c.also]


def test_second_permissions_are_declared_on_their_routes() -> None:
    assert {(c.id, extra) for c, extra in SECOND} >= {
        ("GET /api/subscriptions", Action.COMMS_MANAGE), ("PUT /api/subscriptions", Action.COMMS_MANAGE),
        ("POST /api/stages/{stage_id}/decision", Action.SIGNOFF_DECIDE_INTERNAL)}
    assert all(extra in ACTIONS and extra != c.action for c, extra in SECOND)


@pytest.mark.parametrize(("case", "extra"), SECOND, ids=lambda v: v.id if isinstance(v, RouteCase) else v)
def test_a_second_permission_widens_the_answer_but_never_locks_the_route(
        client: TestClient, world: World, case: RouteCase, extra: Action) -> None:
    assert case.action
    below = role_below(ACTIONS[extra])
    for role in {ACTIONS[case.action], ACTIONS[extra], *([below] if below else [])}:
        if PROJECT_ROLE_RANK[role] < PROJECT_ROLE_RANK[ACTIONS[case.action]]:
            continue
        response = _call(client, case, world.h(role), world.project_a, world.project_b)
        _assert_envelope(response)
        assert response.status_code not in (401, 403), (role, response.text)


# Bodies another system writes, where unknown fields are expected and ignored.
OPEN_BODIES = {"MailgunWebhook"}


def test_every_request_body_is_strict() -> None:
    from pydantic import BaseModel

    from kap.core.schemas import Strict

    bodies = {t for c in CASES for p in _all_params(c.route.dependant, "body_params")
              for t in (typing.get_args(p.field_info.annotation) or (p.field_info.annotation,))
              if isinstance(t, type) and issubclass(t, BaseModel)}
    assert len(bodies) > 15
    loose = {t.__name__ for t in bodies if not issubclass(t, Strict)}
    assert loose == OPEN_BODIES, "request bodies subclass kap.core.schemas.Strict"
