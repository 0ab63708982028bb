"""Writing a backup streams: memory stays flat whatever the size of the files."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
import uuid

from fastapi.testclient import TestClient

from kap.backups.writer import backup_project
from kap.core.storage import CHUNK
from kap.documents.ingest import storage_key
from kap.documents.models import Artifact
from tests.backups.conftest import runtime_of
from tests.conftest import World

FILE_MB = 48


def _big_document(client: TestClient, world: World) -> str:
    rt = runtime_of(client)
    artifact_id = uuid.uuid4()
    key = storage_key(world.org1, world.project_a, artifact_id)
    digest = hashlib.sha256()

    class Source(io.BytesIO):
        left = FILE_MB

        def read(self, size: int | None = -1) -> bytes:
            if not self.left:
                return b""
            self.left -= 1
            piece = os.urandom(CHUNK)
            digest.update(piece)
            return piece

    rt.storage.artifacts.put(key, Source())
    with rt.db.service_transaction() as s:
        s.add(Artifact(id=artifact_id, org_id=world.org1, project_id=world.project_a, name="scan archive.bin",
                       media_type="application/octet-stream", kind="text", size=FILE_MB * CHUNK,
                       sha256=digest.hexdigest(), storage_key=key, status="ready", ocr_pages=[], meta={}))
    return digest.hexdigest()


def test_backup_memory_stays_flat_for_a_large_file(client: TestClient, world: World) -> None:
    rt = runtime_of(client)
    _big_document(client, world)
    tracemalloc.start()
    try:
        written = backup_project(rt, world.project_a)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert written.size > FILE_MB * CHUNK  # random bytes are stored, not deflated
    assert peak < 24 * 2**20, f"peak {peak / 2**20:.1f} MB for a {FILE_MB} MB file"
