"""/openapi.json lists every status each operation can answer, and the methods a path takes are honest.

The statuses a route can answer are rebuilt here from what the route is made of, with a
table of this file's own (a dependency → what it answers), so a route that gains a
dependency nobody classified, or a status nobody declared, fails here before it ships.
Then every operation is called for real (anonymous, a member of another project, the
lowest role, the owner with an empty body) and each answer must be declared.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import compile_path

from kap.app import create_app
from kap.core.errors import KapError, declared_errors
from kap.core.runtime import Runtime
from tests.conftest import World

# What each dependency can answer, whatever route uses it. A new dependency must be added.
DEPENDENCY_STATUSES: dict[str, set[int]] = {
    "get_runtime": {503},                         # the database may be down or not migrated
    "optional_identity": {401, 422, 429},         # bad credentials, a bad X-Dev-Role, the rate limit
    "require_identity": {401},
    "limit_anonymous": {429},
    "ActionDependency": {403, 404},               # require(action): role too low; not yours
    "WriteOrInternal": {401, 403, 404},
    "qa_tools_enabled": {404},                    # QA tools off: as if the route did not exist
    "user_session": set(), "service_session": set(), "public_session": set(),
    "AuditFilters": set(),                        # query parameters only
}
ERROR_REF = {"$ref": "#/components/schemas/Error"}


def _operations(app: Any) -> Iterator[tuple[str, str, Any]]:
    for route in iter_route_contexts(app.routes):
        if getattr(route, "dependant", None) is None or not route.include_in_schema:
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            yield method.lower(), str(route.path_format), route


def _dependencies(dependant: Any) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub
        yield from _dependencies(sub)


def _expected(method: str, route: Any) -> set[int]:
    """The statuses a route can answer, from its shape and this file's table."""
    dependant = route.dependant
    parts = [dependant, *_dependencies(dependant)]
    expected = {422}  # the edge checks the text of every query string
    if method in ("post", "put", "patch", "delete"):
        expected |= {400, 413}  # a malformed or oversized Content-Length
    if any(p.path_params for p in parts):
        expected.add(404)
    if any(p.body_params for p in parts):
        expected |= {400, 413, 415, 422}
    for sub in parts[1:]:
        name = getattr(sub.call, "__name__", type(sub.call).__name__)
        assert name in DEPENDENCY_STATUSES, f"classify the dependency {name} in DEPENDENCY_STATUSES"
        expected |= DEPENDENCY_STATUSES[name]
    expected |= {error.status for error in declared_errors(route.endpoint)}
    return expected


@pytest.fixture(scope="module")
def spec(runtime: Runtime) -> dict[str, Any]:
    return dict(TestClient(create_app(runtime=runtime)).get("/openapi.json").json())


def test_every_operation_lists_what_its_route_can_answer(app: Any, spec: dict[str, Any]) -> None:
    operations = list(_operations(app))
    assert len(operations) > 60
    for method, path, route in operations:
        declared = {int(code) for code in spec["paths"][path][method]["responses"] if code[0] in "45"}
        missing = _expected(method, route) - declared
        assert not missing, (method, path, missing)


def test_routes_declare_kap_errors_only(app: Any) -> None:
    for method, path, route in _operations(app):
        for error in declared_errors(route.endpoint):
            assert issubclass(error, KapError), (method, path, error)
            assert error.status >= 400, (method, path, error)


def test_every_error_is_the_envelope_or_a_declared_page(spec: dict[str, Any]) -> None:
    assert spec["components"]["schemas"]["Error"]["required"] == ["ok", "error", "request_id"]
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for code, response in operation["responses"].items():
                if code[0] not in "45":
                    continue
                content = response["content"]
                assert content == {"application/json": {"schema": ERROR_REF}} or list(content) == ["text/html"], \
                    (method, path, code, content)


def test_files_and_pages_declare_their_content_types(spec: dict[str, Any]) -> None:
    paths = spec["paths"]

    def media(path: str, method: str = "get", status: str = "200") -> set[str]:
        return set(paths[path][method]["responses"][status]["content"])

    assert "text/csv" in media("/api/audit")
    assert "text/csv" in media("/api/raid/export.csv")
    assert "application/zip" in media("/api/backups/download")
    assert {"text/html", "application/pdf"} <= media("/api/stages/{stage_id}/signoff-certificate")
    assert "*/*" in media("/api/documents/{artifact_id}/download")
    assert media("/unsubscribe/{token}", "get", "404") == {"text/html"}
    assert media("/unsubscribe/{token}", "post", "404") == {"text/html"}
    assert "202" in paths["/api/ocr/resolve"]["post"]["responses"]
    assert {"403", "409", "503"} <= set(paths["/api/webhooks/mailgun"]["post"]["responses"])
    assert "not_configured" in paths["/api/webhooks/mailgun"]["post"]["responses"]["503"]["description"]


def _request(method: str, path: str, project: uuid.UUID) -> tuple[str, dict[str, Any]]:
    url = path
    for name in ("project_id", "org_id", "stage_id", "artifact_id", "item_id", "request_id", "user_id"):
        url = url.replace("{" + name + "}", str(project if name == "project_id" else uuid.uuid4()))
    url = url.replace("{token}", "not-a-token")
    return url, {"params": {"project_id": str(project)}}


def _answered(response: Any, operation: dict[str, Any]) -> tuple[str, str] | None:
    status = str(response.status_code)
    declared = operation["responses"].get(status)
    if declared is None:
        return status, "status"
    media = response.headers.get("content-type", "").split(";")[0]
    types = set(declared.get("content", {}))
    if response.content and types and media not in types and "*/*" not in types:
        return status, media
    return None


# Routes that run whole workflows (seeding, a smoke run): the schemathesis run covers them.
SLOW = {"/api/dev/seed-simple", "/api/dev/smoke-run"}


def test_what_every_operation_answers_is_declared(client: TestClient, world: World, spec: dict[str, Any]) -> None:
    callers = {"anonymous": {}, "outsider": world.h("outsider"), "member": world.h("member"),
               "owner": world.h("owner")}
    wrong = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if path in SLOW:
                continue
            url, kwargs = _request(method, path, world.project_a)
            for who, headers in callers.items():
                body: dict[str, Any] = {"json": {}} if "requestBody" in operation else {}
                response = client.request(method.upper(), url, headers=headers, **kwargs, **body)
                problem = _answered(response, operation)
                if problem is not None:
                    wrong.append((method, path, who, *problem, response.text[:120]))
    assert not wrong, wrong


def test_a_literal_path_never_falls_into_an_id_route(app: Any) -> None:
    paths = {str(r.path) for r in iter_route_contexts(app.routes) if r.path and r.methods}
    literal = [p for p in paths if "{" not in p]
    for fixed in literal:
        for other in paths:
            if "{" in other:
                assert not compile_path(other)[0].match(fixed), (fixed, "falls into", other)


def test_a_method_the_path_does_not_take_is_405_with_allow(client: TestClient, world: World) -> None:
    params = {"project_id": str(world.project_a)}
    for method in ("PATCH", "PUT", "DELETE", "GET"):
        refused = client.request(method, "/api/stages/apply-template", params=params, headers=world.h("owner"),
                                 json={"title": "x"})
        assert refused.status_code == 405, (method, refused.text)
        assert refused.json()["error"]["code"] == "method_not_allowed"
        assert refused.headers["allow"] == "OPTIONS, POST"
    csv = client.put("/api/raid/export.csv", params=params, headers=world.h("owner"))
    assert csv.status_code == 405
    assert csv.headers["allow"] == "GET, HEAD, OPTIONS"


def test_options_answers_the_methods_of_the_path(client: TestClient) -> None:
    answer = client.options("/api/stages/apply-template")
    assert answer.status_code == 204
    assert answer.headers["allow"] == "OPTIONS, POST"
    stage = client.options(f"/api/stages/{uuid.uuid4()}")
    assert stage.headers["allow"] == "DELETE, GET, HEAD, OPTIONS, PATCH"
    unknown = client.options("/api/nowhere")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"


def test_cors_preflight_works_when_configured(runtime: Runtime) -> None:
    app = create_app(runtime=runtime)
    app.add_middleware(CORSMiddleware, allow_origins=["https://app.example"], allow_methods=["*"],
                       allow_headers=["*"])
    preflight = TestClient(app).options("/api/projects", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in preflight.headers["access-control-allow-methods"]
