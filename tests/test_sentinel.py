"""The tenant sentinel answers the same way whether the target exists or not, and finds no leak."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from tests.conftest import World


def _run(client: TestClient, world: World, who: str, target: uuid.UUID) -> dict[str, object]:
    response = client.get("/api/sentinel/tenant-leak",
                          params={"project_id": str(world.project_a), "target_project_id": str(target)},
                          headers=world.h(who))
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_member_of_a_sees_no_leak_into_b_or_another_org(client: TestClient, world: World) -> None:
    for target in (world.project_b, world.project_c):
        body = _run(client, world, "member", target)
        assert body["leak"] is False
        checks = body["checks"]
        assert isinstance(checks, list)
        tables = {c["check"] for c in checks}
        assert {"access", "table:projects", "table:project_members", "table:audit_events"} <= tables
        assert all(c.get("app_rows", 0) == 0 and not c.get("rls_rows") for c in checks)


def test_sentinel_never_says_whether_the_target_exists(client: TestClient, world: World) -> None:
    real = _run(client, world, "member", world.project_b)
    unknown = _run(client, world, "member", uuid.uuid4())
    assert real == unknown


def test_caller_entitled_to_the_target_is_not_a_leak(client: TestClient, world: World) -> None:
    body = _run(client, world, "org_owner", world.project_b)
    assert body["leak"] is False and body["authorized"] is True
