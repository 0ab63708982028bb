"""Backup fixtures: a real S3-protocol server on loopback, a project with documents, stages and comms."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from kap.backups import tables
from kap.core.runtime import Runtime
from tests.conftest import FIXTURES, World

CORPUS = FIXTURES / "northwind"
S3_KEYS = {"kap_s3_access_key_id": "testing", "kap_s3_secret_access_key": "testing-secret"}




@pytest.fixture(params=["local", "s3"])
def bk_client(request: pytest.FixtureRequest, client: TestClient,
              make_client: Callable[..., TestClient]) -> TestClient:
    """A client whose storage is the local folder or the S3 server."""
    if request.param == "local":
        return client
    url = request.getfixturevalue("s3_url")
    suffix = uuid.uuid4().hex[:10]
    return make_client(kap_s3_endpoint_url=url, kap_s3_bucket_artifacts=f"art-{suffix}",
                       kap_s3_bucket_backups=f"bak-{suffix}", **S3_KEYS)


def runtime_of(client: TestClient) -> Runtime:
    rt: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    return rt


def pa(world: World, project: uuid.UUID | None = None) -> dict[str, str]:
    return {"project_id": str(project or world.project_a)}


def upload(client: TestClient, world: World, name: str, data: bytes) -> dict[str, Any]:
    response = client.post("/api/ingest-sync", params=pa(world), headers=world.h("lead"),
                           files={"file": (name, data, "application/octet-stream")})
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()["document"]
    return document


def build_project(client: TestClient, world: World, *, corpus: bool = True) -> dict[str, Any]:
    """Documents (the Northwind corpus), stages with a decided sign-off, comms settings and subscriptions."""
    files = sorted(CORPUS.iterdir()) if corpus else [CORPUS / "Test strategy.txt", CORPUS / "Cutover notes.md"]
    docs = {p.name: upload(client, world, p.name, p.read_bytes()) for p in files}
    stage = client.post("/api/stages", params=pa(world), headers=world.h("pm"), json={"title": "Discovery"})
    assert stage.status_code == 201, stage.text
    client.post("/api/stages", params=pa(world), headers=world.h("pm"), json={"title": "Design"})
    decided = client.post(f"/api/stages/{stage.json()['id']}/decision", params=pa(world), headers=world.h("admin"),
                          json={"decision": "approve", "name": "Avery Admin"})
    assert decided.status_code == 200, decided.text
    settings = client.put("/api/comms/settings", params=pa(world), headers=world.h("pm"),
                          json={"timezone": "Europe/Berlin", "daily_cap": 7})
    assert settings.status_code == 200, settings.text
    subs = client.put("/api/subscriptions", params=pa(world), headers=world.h("pm"),
                      json={"mine": {"digest": False},
                            "external": [{"email": "sponsor@client.example.com", "name": "Sam Sponsor"}]})
    assert subs.status_code == 200, subs.text
    return {"docs": docs, "stage_id": stage.json()["id"]}


def run_backup(client: TestClient, world: World, project: uuid.UUID | None = None) -> dict[str, Any]:
    response = client.post("/api/backups/run", params=pa(world, project), headers=world.h("admin"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def row_counts(runtime: Runtime, project: uuid.UUID) -> dict[str, int]:
    """Rows per backed-up table for a project."""
    out = {}
    with runtime.db.service_session() as session:
        for table in tables.backup_tables():
            out[table.name] = session.scalar(select(func.count()).select_from(table)
                                             .where(table.c.project_id == project)) or 0
    return out


def read_zip(runtime: Runtime, key: str) -> bytes:
    with runtime.storage.backups.open(key) as handle:
        return handle.read()


def rebuild(data: bytes, change: Callable[[str, bytes], bytes | None] | None = None,
            extra: dict[str, bytes] | None = None, manifest: Callable[[dict[str, Any]], None] | None = None) -> bytes:
    """Rewrite a backup ZIP: change entries (None drops one), add entries, edit the manifest."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            body = source.read(info)
            if info.filename == "manifest.json" and manifest is not None:
                doc = json.loads(body)
                manifest(doc)
                body = json.dumps(doc).encode()
            elif change is not None:
                changed = change(info.filename, body)
                if changed is None:
                    continue
                body = changed
            target.writestr(info.filename, body)
        for name, body in (extra or {}).items():
            target.writestr(name, body)
    return out.getvalue()


def store_as(runtime: Runtime, key: str, data: bytes) -> None:
    runtime.storage.backups.put(key, io.BytesIO(data))
