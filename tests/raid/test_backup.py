"""The RAID log travels in backups: a restore into a new project brings every item, comment and change
with new ids that point at the restored documents."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

from kap.backups import tables
from tests.conftest import World
from tests.raid.conftest import CORPUS, by_ref, items, upload


def _shape(found: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted((i["kind"], i["ref"], i["title"], i["owner"], i["due"], i["status"], i["state"],
                   i["source"]["artifact_name"], i["source"]["locator"], i["source"]["quote"]) for i in found)


def test_restore_into_a_new_project_brings_the_raid_log(client: TestClient, world: World) -> None:
    assert {"raid_items", "raid_comments", "raid_changes"} <= {t.name for t in tables.backup_tables()}
    q = {"project_id": str(world.project_a)}
    upload(client, world, CORPUS / "Kickoff minutes 2026-01-13.docx")
    upload(client, world, CORPUS / "RAID log.xlsx")
    found = by_ref(items(client, world))
    client.post(f"/api/raid/{found['R-07']['id']}/accept", params=q, headers=world.h("lead"),
                json={"severity": "high"})
    client.post(f"/api/raid/{found['R-07']['id']}/comments", params=q, headers=world.h("member"),
                json={"body": "ADP signed the extension."})
    before = items(client, world)

    made = client.post("/api/backups/run", params=q, headers=world.h("admin"))
    assert made.status_code == 200, made.text
    assert made.json()["row_counts"]["raid_items"] == len(before)
    restored = client.post("/api/backups/restore", params={**q, "backup_key": made.json()["key"]},
                           headers=world.h("owner"), json={"target": "new"})
    assert restored.status_code == 200, restored.text
    new = uuid.UUID(restored.json()["project_id"])

    after = items(client, world, project=new, who="owner")
    assert _shape(after) == _shape(before)
    assert not {i["id"] for i in after} & {i["id"] for i in before}
    docs = client.get("/api/documents", params={"project_id": str(new)}, headers=world.h("owner")).json()
    new_docs = {d["id"] for d in docs["documents"]}
    assert {i["source"]["artifact_id"] for i in after} <= new_docs
    assert all(i["source"]["link"].startswith(f"/p/{new}/documents/") for i in after)
    r07 = by_ref(after)["R-07"]
    detail = client.get(f"/api/raid/{r07['id']}", params={"project_id": str(new)}, headers=world.h("owner")).json()
    assert [c["body"] for c in detail["comments"]] == ["ADP signed the extension."]
    assert {c["origin"] for c in detail["changes"]} == {"source", "edit", "review"}
