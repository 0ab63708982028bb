"""Hostile backups are refused with clear errors, and a refused restore leaves nothing behind."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from kap.backups import archive
from kap.backups.keys import backup_key
from kap.core.models import Project
from tests.backups.conftest import build_project, pa, read_zip, rebuild, run_backup, runtime_of, store_as
from tests.conftest import World

OTHER_DAY = date(2026, 1, 2)


def _restore(client: TestClient, world: World, key: str) -> object:
    return client.post("/api/backups/restore", params={**pa(world), "backup_key": key}, headers=world.h("owner"),
                       json={"target": "new"})


def _state(client: TestClient) -> tuple[int, int]:
    rt = runtime_of(client)
    with rt.db.service_session() as s:
        projects = s.scalar(select(func.count()).select_from(Project)) or 0
    return projects, len(list(rt.storage.artifacts.list("artifacts/")))


def _prepared(client: TestClient, world: World) -> tuple[bytes, str]:
    build_project(client, world, corpus=False)
    made = run_backup(client, world)
    return read_zip(runtime_of(client), made["key"]), backup_key(world.org1, world.project_a, OTHER_DAY)


def _refused(client: TestClient, world: World, key: str, code: str) -> None:
    before = _state(client)
    response = _restore(client, world, key)
    assert response.status_code in (409, 422), response.text  # type: ignore[attr-defined]
    assert response.json()["error"]["code"] == code, response.text  # type: ignore[attr-defined]
    assert _state(client) == before  # no project, no file: nothing half-restored


def test_one_changed_byte_is_refused(bk_client: TestClient, world: World) -> None:
    data, key = _prepared(bk_client, world)
    flipped = bytearray(data)
    where = data.index(b"Test strategy") if b"Test strategy" in data else len(data) // 3
    flipped[where] ^= 0x01
    store_as(runtime_of(bk_client), key, bytes(flipped))
    before = _state(bk_client)
    response = _restore(bk_client, world, key)
    assert response.status_code == 422, response.text  # type: ignore[attr-defined]
    assert response.json()["error"]["code"] in ("backup_tampered", "invalid_backup")  # type: ignore[attr-defined]
    assert _state(bk_client) == before


def test_a_file_that_does_not_match_its_sha256_is_refused_after_others_were_copied(bk_client: TestClient,
                                                                                    world: World) -> None:
    data, key = _prepared(bk_client, world)
    names = [n for n in zipfile.ZipFile(io.BytesIO(data)).namelist() if n.startswith("artifacts/")]
    last = names[-1]
    store_as(runtime_of(bk_client), key, rebuild(data, lambda n, b: b + b"!" if n == last else b,
                                                 manifest=lambda m: m["entries"][last].update(
                                                     size=m["entries"][last]["size"] + 1)))
    _refused(bk_client, world, key, "backup_tampered")


def test_a_row_that_cannot_be_written_rolls_everything_back(client: TestClient, world: World) -> None:
    data, key = _prepared(client, world)

    def bad_stage(name: str, body: bytes) -> bytes:
        if name != "data/stages.jsonl":
            return body
        rows = [json.loads(line) for line in body.splitlines()]
        rows[-1]["planned_start"] = "not-a-date"
        return b"\n".join(json.dumps(r).encode() for r in rows) + b"\n"

    def fix_hash(manifest: dict[str, object]) -> None:
        body = bad_stage("data/stages.jsonl", zipfile.ZipFile(io.BytesIO(data)).read("data/stages.jsonl"))
        import hashlib

        manifest["entries"]["data/stages.jsonl"] = {  # type: ignore[index]
            "sha256": hashlib.sha256(body).hexdigest(), "size": len(body), "kind": "data"}

    store_as(runtime_of(client), key, rebuild(data, bad_stage, manifest=fix_hash))
    _refused(client, world, key, "invalid_backup")


def test_a_truncated_backup_is_refused(client: TestClient, world: World) -> None:
    data, key = _prepared(client, world)
    store_as(runtime_of(client), key, data[: len(data) // 2])
    _refused(client, world, key, "invalid_backup")
    contents = client.get("/api/backups/contents", params={**pa(world), "backup_key": key}, headers=world.h("admin"))
    assert contents.status_code == 422


def test_zip_slip_and_links_are_refused(client: TestClient, world: World) -> None:
    data, key = _prepared(client, world)
    store_as(runtime_of(client), key, rebuild(data, extra={"../../outside.txt": b"x"}))
    _refused(client, world, key, "backup_unsafe_entry")
    store_as(runtime_of(client), key, rebuild(data, extra={"/etc/passwd": b"x"}))
    _refused(client, world, key, "backup_unsafe_entry")
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            target.writestr(info, source.read(info))
        link = zipfile.ZipInfo("artifacts/" + "0" * 32 + "/link")
        link.external_attr = 0o120777 << 16
        target.writestr(link, "/etc/passwd")
    store_as(runtime_of(client), key, out.getvalue())
    _refused(client, world, key, "backup_unsafe_entry")


def test_a_zip_bomb_is_refused_before_it_expands(client: TestClient, world: World) -> None:
    data, key = _prepared(client, world)
    zeros = b"\0" * (24 * 2**20)
    store_as(runtime_of(client), key, rebuild(data, lambda n, b: zeros if n == "data/stages.jsonl" else b))
    _refused(client, world, key, "backup_too_large")


def test_too_many_entries_are_refused() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for i in range(12):
            target.writestr(f"data/t{i}.jsonl", b"")
    with pytest.raises(archive.BackupInvalid) as caught:
        archive.BackupReader(io.BytesIO(out.getvalue()), archive.Limits(max_entries=10))
    assert caught.value.code == "backup_too_many_entries"


def test_a_backup_from_a_newer_schema_is_refused(client: TestClient, world: World) -> None:
    data, key = _prepared(client, world)
    store_as(runtime_of(client), key, rebuild(data, manifest=lambda m: m["schema_revisions"].append("zz_9999")))
    _refused(client, world, key, "backup_newer_schema")
    response = _restore(client, world, key)
    assert "newer Kap schema" in response.json()["error"]["message"]  # type: ignore[attr-defined]


def test_a_backup_of_another_project_under_this_key_is_refused(client: TestClient, world: World) -> None:
    data, key = _prepared(client, world)
    store_as(runtime_of(client), key, rebuild(data, manifest=lambda m: m.update(project_id=str(world.project_b))))
    _refused(client, world, key, "backup_wrong_project")


@pytest.mark.parametrize("shape", ["other_project", "other_org", "dotdot", "absolute", "garbage", "missing"])
def test_keys_outside_the_project_are_404_whatever_their_shape(client: TestClient, world: World, shape: str) -> None:
    made = run_backup(client, world)
    day = made["key"].rsplit("/", 1)[-1]
    b_key = backup_key(world.org1, world.project_b, date.today())
    store_as(runtime_of(client), b_key, read_zip(runtime_of(client), made["key"]))
    keys = {"other_project": b_key, "other_org": f"backups/{world.org2}/{world.project_c}/{day}",
            "dotdot": f"backups/{world.org1}/{world.project_a}/../{world.project_b}/{day}",
            "absolute": f"/backups/{world.org1}/{world.project_a}/{day}", "garbage": "x",
            "missing": backup_key(world.org1, world.project_a, date(2001, 1, 1))}
    params = {**pa(world), "backup_key": keys[shape]}
    calls = [client.get("/api/backups/contents", params=params, headers=world.h("admin")),
             client.get("/api/backups/download", params=params, headers=world.h("admin")),
             client.post("/api/backups/restore", params=params, headers=world.h("owner"), json={"target": "new"}),
             client.post("/api/backups/store-and-reingest", params={**params, "artifact_name": "artifacts/x"},
                         headers=world.h("owner"))]
    for response in calls:
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "backup_not_found"
