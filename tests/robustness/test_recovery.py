"""The recovery pass: documents a dead worker left in flight reach a final state; leftovers are swept."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import update

from kap.core.owner import owner_tag
from kap.core.recovery import run_recovery
from kap.core.runtime import Runtime
from kap.documents.models import Artifact
from tests.conftest import World

TEXT = b"Cutover rehearsal notes.\nPayroll parallel run signed off by the sponsor.\n"


def dead_tag() -> str:
    """The owner tag of a process that has exited (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return owner_tag().split("x")[0] + f"x{proc.pid}"


def _upload(client: TestClient, world: World) -> dict[str, Any]:
    content = TEXT + uuid.uuid4().hex.encode()
    response = client.post("/api/ingest", params={"project_id": str(world.project_a)}, headers=world.h("owner"),
                           files={"file": ("notes.txt", content, "text/plain")})
    assert response.status_code == 202, response.text
    return dict(response.json()["document"])


def _crash_mid_processing(runtime: Runtime, artifact_id: str, by: str, recoveries: int = 0) -> None:
    with runtime.db.service_transaction() as s:
        s.execute(update(Artifact).where(Artifact.id == uuid.UUID(artifact_id)).values(
            status="processing", meta={"claim": {"by": by, "job": "ingest"}, "recoveries": recoveries}))


def _status(client: TestClient, world: World, artifact_id: str) -> dict[str, Any]:
    response = client.get(f"/api/documents/{artifact_id}", params={"project_id": str(world.project_a)},
                          headers=world.h("owner"))
    return dict(response.json())


def test_document_of_a_dead_worker_is_processed_again(client: TestClient, world: World, runtime: Runtime) -> None:
    doc = _upload(client, world)
    _crash_mid_processing(runtime, doc["id"], dead_tag())
    assert _status(client, world, doc["id"])["status"] == "processing"
    done = run_recovery(runtime)
    assert done["documents_in_flight"] >= 1
    assert _status(client, world, doc["id"])["status"] == "ready"
    reingest = client.post("/api/reingest-stored", params={"project_id": str(world.project_a),
                                                           "artifact_id": doc["id"]}, headers=world.h("owner"))
    assert reingest.status_code == 200, reingest.text


def test_document_that_keeps_killing_its_worker_fails(client: TestClient, world: World, runtime: Runtime) -> None:
    doc = _upload(client, world)
    _crash_mid_processing(runtime, doc["id"], dead_tag(), recoveries=2)
    run_recovery(runtime)
    final = _status(client, world, doc["id"])
    assert final["status"] == "failed"
    assert "interrupted" in final["status_reason"]


def test_document_of_a_live_worker_is_left_alone(client: TestClient, world: World, runtime: Runtime) -> None:
    doc = _upload(client, world)
    _crash_mid_processing(runtime, doc["id"], owner_tag())
    run_recovery(runtime)
    assert _status(client, world, doc["id"])["status"] == "processing"
    _crash_mid_processing(runtime, doc["id"], dead_tag())
    run_recovery(runtime)  # leave the shared database clean


def test_leftovers_of_dead_owners_and_old_strays_are_swept(runtime: Runtime, settings: Any) -> None:
    data = Path(settings.kap_data_dir).resolve()
    tmp = data / "tmp"
    tmp.mkdir(exist_ok=True)
    dead, live = tmp / f"ingest-{dead_tag()}-abc", tmp / f"ingest-{owner_tag()}-def"
    for folder in (dead, live):
        folder.mkdir()
        (folder / "source.docx").write_bytes(b"x")
    backups = runtime.storage.backups
    backups.put("backups/partial/keep.zip", _Bytes(b"zip"))
    partial = Path(backups.root) / "backups/partial" / f".upload-{dead_tag()}-xyz"  # type: ignore[attr-defined]
    partial.write_bytes(b"half a zip")
    artifacts = runtime.storage.artifacts
    old_key = f"artifacts/{uuid.uuid4().hex}/{uuid.uuid4().hex}/{uuid.uuid4().hex}/1"
    new_key = f"artifacts/{uuid.uuid4().hex}/{uuid.uuid4().hex}/{uuid.uuid4().hex}/1"
    artifacts.put(old_key, _Bytes(b"stray"))
    artifacts.put(new_key, _Bytes(b"in flight"))
    an_hour_ago = time.time() - 3600
    os.utime(Path(artifacts.root) / old_key, (an_hour_ago, an_hour_ago))  # type: ignore[attr-defined]

    done = run_recovery(runtime)

    assert not dead.exists()
    assert live.exists()
    assert not partial.exists()
    assert backups.exists("backups/partial/keep.zip")
    assert not artifacts.exists(old_key)
    assert artifacts.exists(new_key)  # younger than the grace: it may belong to an upload in progress
    assert done["work_folders"] >= 1
    assert done["partial_uploads"] >= 1
    assert done["stray_stored_files"] >= 1
    artifacts.delete(new_key)
    backups.delete("backups/partial/keep.zip")
    shutil.rmtree(live)


class _Bytes(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.data = data

    def read(self, size: int | None = -1) -> bytes:
        out, self.data = self.data, b""
        return out
