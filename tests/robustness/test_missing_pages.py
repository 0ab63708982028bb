"""A page of an object that is not in the project answers 404 (the same for unknown and foreign ids)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import World
from tests.test_web_shell import signed_in


def _upload(client: TestClient, world: World, project: uuid.UUID, who: str) -> str:
    response = client.post("/api/ingest-sync", params={"project_id": str(project)}, headers=world.h(who),
                           files={"file": ("Plan.txt", b"Cutover weekend is 14 March.", "text/plain")})
    assert response.status_code == 200, response.text
    return str(response.json()["document"]["id"])


@pytest.mark.parametrize("which", ["unknown", "foreign", "not-a-uuid"])
def test_a_document_page_of_another_project_is_a_404_page(app: Any, client: TestClient, world: World,
                                                          which: str) -> None:
    foreign = _upload(client, world, world.project_b, "b_member")
    own = _upload(client, world, world.project_a, "lead")
    doc = {"unknown": str(uuid.uuid4()), "foreign": foreign, "not-a-uuid": "nope"}[which]
    browser = signed_in(app, world.users["member"])
    missing = browser.get(f"/p/{world.project_a}/documents/{doc}")
    assert missing.status_code == 404
    assert "Document not found" in missing.text
    assert "Cutover weekend" not in missing.text
    image = browser.get(f"/p/{world.project_a}/documents/{doc}/pages/1.png")
    assert image.status_code == 404
    shown = browser.get(f"/p/{world.project_a}/documents/{own}")
    assert shown.status_code == 200
    assert "Cutover weekend is 14 March." in shown.text


def test_a_raid_item_page_of_no_such_item_is_a_404_page(app: Any, world: World) -> None:
    browser = signed_in(app, world.users["member"])
    missing = browser.get(f"/p/{world.project_a}/raid/items/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert "This item is not in the project" in missing.text
