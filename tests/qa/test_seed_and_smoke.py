"""The QA seeder and smoke runner through the API."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import World


def test_seed_is_idempotent_and_fills_the_ocr_lane(client: TestClient, world: World) -> None:
    url = f"/api/dev/seed-simple?project_id={world.project_a}"
    first = client.post(url, headers=world.h("owner"))
    assert first.status_code == 200, first.text
    body = first.json()
    assert body == {"ok": True, "documents": 5, "stages": 6, "members": 2, "needs_ocr": 1}
    again = client.post(url, headers=world.h("owner")).json()
    assert again == body
    docs = client.get("/api/documents", params={"project_id": str(world.project_a)}, headers=world.h("member"))
    names = {d["name"] for d in docs.json()["documents"]}
    assert "RAID log Contoso.xlsx" in names
    hits = client.get("/api/search", params={"project_id": str(world.project_a), "q": "R-07"},
                      headers=world.h("member")).json()
    assert hits["hits"], hits
    assert hits["hits"][0]["name"] == "RAID log Contoso.xlsx", hits["hits"][0]


def test_seed_needs_owner_or_admin(client: TestClient, world: World) -> None:
    response = client.post(f"/api/dev/seed-simple?project_id={world.project_a}", headers=world.h("pm"))
    assert response.status_code == 403


def test_qa_routes_do_not_exist_without_dev_auth_or_qa_tools(make_client: Any, world: World) -> None:
    client = make_client(dev_auth=False, kap_qa_tools=False)
    response = client.post(f"/api/dev/seed-simple?project_id={world.project_a}")
    assert response.status_code == 404


def test_smoke_run_creates_stage_link_and_digest(client: TestClient, world: World) -> None:
    url = f"/api/dev/smoke-run?project_id={world.project_a}"
    response = client.post(url, json={"email_to": "test@example.com"}, headers=world.h("owner"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True
    assert body["stage_id"]
    assert body["signoff_request_id"]
    assert "/signoff/" in body["token_link"]
    assert [s["name"] for s in body["steps"]] == ["stage", "signoff", "digest_preview"]
    assert all(s["ok"] and s["ms"] >= 0 for s in body["steps"])
    assert "counts" in body["digest_preview"]
    token = body["token_link"].rsplit("/", 1)[1]
    page = client.get(f"/signoff/{token}")
    assert page.status_code == 200
    second = client.post(url, json={"email_to": "test@example.com"}, headers=world.h("owner")).json()
    assert second["ok"] is True
    assert second["token_link"] != body["token_link"]
    assert client.get(f"/api/signoff/{token}").status_code in (404, 410)


def test_smoke_run_without_any_address_names_both_settings(client: TestClient, world: World) -> None:
    response = client.post(f"/api/dev/smoke-run?project_id={world.project_a}", headers=world.h("owner"))
    assert response.status_code == 422
    assert "DIGEST_TEST_EMAIL" in response.json()["error"]["message"]
