"""The OpenAPI document declares the statuses and content types Kap really answers."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import World


def _spec(client: TestClient) -> dict[str, Any]:
    return dict(client.get("/openapi.json").json())


def test_every_operation_declares_its_errors_as_the_envelope(client: TestClient) -> None:
    spec = _spec(client)
    assert spec["components"]["schemas"]["Error"]["required"] == ["ok", "error", "request_id"]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            codes = set(op["responses"])
            assert {"429", "503"} <= codes, (method, path)
            if path.startswith("/api/") and not path.startswith(("/api/signoff/", "/api/auth/", "/api/webhooks/")):
                assert {"401", "403", "404"} <= codes, (method, path)
            if method in ("post", "put", "patch"):
                assert {"413", "415"} <= codes, (method, path)
            for code, response in op["responses"].items():
                if code.startswith(("4", "5")):
                    assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_file_downloads_declare_their_content_types(client: TestClient) -> None:
    paths = _spec(client)["paths"]
    assert "text/csv" in paths["/api/audit"]["get"]["responses"]["200"]["content"]
    assert "application/zip" in paths["/api/backups/download"]["get"]["responses"]["200"]["content"]
    assert "text/html" in paths["/api/stages/{stage_id}/signoff-certificate"]["get"]["responses"]["200"]["content"]
    assert "*/*" in paths["/api/documents/{artifact_id}/download"]["get"]["responses"]["200"]["content"]


def test_declared_statuses_match_answers(client: TestClient, world: World) -> None:
    spec = _spec(client)
    op = spec["paths"]["/api/projects/{project_id}"]["get"]
    assert str(client.get(f"/api/projects/{world.project_c}", headers=world.h("owner")).status_code) in op["responses"]
    assert str(client.get(f"/api/projects/{world.project_a}").status_code) in op["responses"]
