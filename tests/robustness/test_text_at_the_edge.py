"""NUL bytes and invalid text are refused at the edge with one 422, wherever a request carries them."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import World

NUL = "a\x00b"


def _refused(response: Any, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["ok"] is False, body
    assert body["error"]["code"] == "validation_error", body
    fields = body["error"]["details"]["fields"]
    if field is not None:
        assert field in [f["field"] for f in fields], fields
    return body


def test_anonymous_signoff_with_nul_note_is_422(client: TestClient) -> None:
    response = client.post("/api/signoff/anything", json={"decision": "approve", "name": "x", "note": NUL})
    body = _refused(response, "note")
    assert "NUL" in body["error"]["message"]


def test_signoff_page_form_with_nul_is_422(client: TestClient) -> None:
    _refused(client.post("/signoff/anything", data={"decision": "approve", "name": NUL}), "name")


def test_signoff_page_multipart_form_with_nul_is_422(client: TestClient) -> None:
    response = client.post("/signoff/anything", files={"name": (None, NUL), "decision": (None, "approve")})
    _refused(response, "name")


def test_nul_in_query_is_422(client: TestClient, world: World) -> None:
    pid = str(world.project_a)
    h = world.h("owner")
    _refused(client.get("/api/documents", params={"project_id": pid, "name": NUL}, headers=h), "name")
    _refused(client.get("/api/documents", params={"project_id": pid, "type": NUL}, headers=h), "type")
    _refused(client.get("/api/search", params={"project_id": pid, "q": NUL}, headers=h), "q")
    _refused(client.get("/api/audit", params={"project_id": pid, "action": NUL}, headers=h), "action")
    _refused(client.get("/api/audit", params={"project_id": pid, "actor": NUL}, headers=h), "actor")


def test_nul_in_json_bodies_is_422(client: TestClient, world: World) -> None:
    pa = {"project_id": str(world.project_a)}
    h = world.h("owner")
    _refused(client.post("/api/projects", json={"name": NUL}, headers=h), "name")
    _refused(client.patch(f"/api/projects/{world.project_a}", json={"name": NUL}, headers=h), "name")
    _refused(client.post("/api/stages", params=pa, json={"name": NUL}, headers=h), "name")
    _refused(client.post("/api/ask", params=pa, json={"question": NUL}, headers=h), "question")
    _refused(client.put("/api/subscriptions", params=pa, json={"subscribers": [{"email": "a@example.com",
                                                                                 "name": NUL}]}, headers=h),
             "subscribers.0.name")


def test_lone_surrogate_and_bad_utf8_are_422(client: TestClient, world: World) -> None:
    h = {**world.h("owner"), "Content-Type": "application/json"}
    _refused(client.post("/api/projects", content=b'{"name": "x\\ud800y"}', headers=h), "name")
    response = client.get(f"/api/documents?project_id={world.project_a}&name=%ff%fe", headers=world.h("owner"))
    _refused(response, "name")


def test_ordinary_text_still_passes(client: TestClient, world: World) -> None:
    response = client.post("/api/projects", json={"name": "Zürich rollout – phase 2 ✓"}, headers=world.h("org_admin"))
    assert response.status_code == 201, response.text
    listed = client.get("/api/documents", params={"project_id": str(world.project_a), "name": "a\\u0000b"},
                        headers=world.h("owner"))
    assert listed.status_code == 200  # an escaped backslash is ordinary text


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, item in spec["paths"].items() for method, op in item.items()
            if method in ("get", "post", "put", "patch", "delete")]


def _fill(path: str, world: World) -> str:
    out = path.replace("{project_id}", str(world.project_a))
    while "{" in out:
        start, end = out.index("{"), out.index("}")
        out = out[:start] + str(uuid.uuid4()) + out[end + 1:]
    return out


def _is_free_text(schema: dict[str, Any]) -> bool:
    options = schema.get("anyOf", [schema])
    return any(o.get("type") == "string" and "format" not in o and "enum" not in o for o in options)


@pytest.fixture
def spec(client: TestClient) -> dict[str, Any]:
    return dict(client.get("/openapi.json").json())


def test_every_free_text_query_parameter_refuses_nul(client: TestClient, world: World,
                                                     spec: dict[str, Any]) -> None:
    checked = 0
    for method, path, op in _operations(spec):
        for param in op.get("parameters", []):
            if param["in"] != "query" or not _is_free_text(param.get("schema", {})):
                continue
            response = client.request(method, _fill(path, world), headers=world.h("owner"),
                                      params={"project_id": str(world.project_a), param["name"]: NUL})
            _refused(response, param["name"])
            checked += 1
    assert checked >= 10


def test_every_json_body_string_field_refuses_nul(client: TestClient, world: World,
                                                  spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    checked = 0
    for method, path, op in _operations(spec):
        content = op.get("requestBody", {}).get("content", {}).get("application/json")
        if not content:
            continue
        ref = content["schema"].get("$ref", "")
        props = schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {})
        for name, prop in props.items():
            if not _is_free_text(prop):
                continue
            response = client.request(method, _fill(path, world), headers=world.h("owner"),
                                      params={"project_id": str(world.project_a)}, json={name: NUL})
            _refused(response, name)
            checked += 1
    assert checked >= 8


def test_options_lists_every_method_of_the_path(client: TestClient) -> None:
    response = client.options("/api/projects")
    assert response.status_code == 204
    assert response.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    assert client.options("/api/nope").status_code == 404


def test_wrong_method_is_405_with_allow_even_with_a_foreign_body(client: TestClient) -> None:
    response = client.request("DELETE", "/api/projects", content=b"x", headers={"Content-Type": "text/plain"})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, OPTIONS, POST"
