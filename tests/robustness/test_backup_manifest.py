"""A ZIP of another org's project placed under this project's backup key is never listed, served or imported."""

from __future__ import annotations

from datetime import date

from fastapi.testclient import TestClient

from kap.backups.keys import backup_key
from kap.backups.verify import verify_backup
from tests.backups.conftest import build_project, pa, read_zip, rebuild, run_backup, runtime_of, store_as
from tests.conftest import World

PLANTED_DAY = date(2026, 1, 3)


def test_foreign_backup_under_this_key_is_refused_everywhere(client: TestClient, world: World) -> None:
    build_project(client, world, corpus=False)
    made = run_backup(client, world)
    rt = runtime_of(client)
    data = read_zip(rt, made["key"])
    planted = backup_key(world.org1, world.project_a, PLANTED_DAY)
    store_as(rt, planted, rebuild(data, manifest=lambda m: m.update(org_id=str(world.org2),
                                                                  project_id=str(world.project_c))))
    h, params = world.h("owner"), {**pa(world), "backup_key": planted}

    listed = client.get("/api/backups", params=pa(world), headers=h).json()["backups"]
    assert made["key"] in [b["key"] for b in listed]
    assert planted not in [b["key"] for b in listed]
    entry = next(e["name"] for e in client.get("/api/backups/contents", params={**pa(world), "backup_key":
                                                                               made["key"]}, headers=h)
                 .json()["entries"] if e["type"] == "artifact")
    for response in (client.get("/api/backups/contents", params=params, headers=h),
                     client.get("/api/backups/download", params=params, headers=h),
                     client.get("/api/backups/download", params={**params, "entry": entry}, headers=h),
                     client.post("/api/backups/store-and-reingest", params={**params, "artifact_name": entry},
                                 headers=h)):
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "backup_wrong_project"

    ok, lines = verify_backup(rt.settings, planted)
    assert not ok
    assert "another project" in lines[0]
    assert verify_backup(rt.settings, made["key"])[0]
    rt.storage.backups.delete(planted)
