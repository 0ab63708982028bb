"""Document fixtures: the Northwind corpus, a real S3-protocol server on loopback, upload helpers."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import FIXTURES, World

CORPUS = FIXTURES / "northwind"
S3_KEYS = {"kap_s3_access_key_id": "testing", "kap_s3_secret_access_key": "testing-secret"}


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def docs_client(backend: str, client: TestClient, make_client: Callable[..., TestClient],
                request: pytest.FixtureRequest) -> TestClient:
    """A client whose storage is the local folder or the S3 server, per `backend`."""
    if backend == "local":
        return client
    url = request.getfixturevalue("s3_url")
    bucket = f"art-{uuid.uuid4().hex[:10]}"
    return make_client(kap_s3_endpoint_url=url, kap_s3_bucket_artifacts=bucket,
                       kap_s3_bucket_backups=f"bak-{bucket}", **S3_KEYS)


def upload(client: TestClient, world: World, path: Path | str, *, who: str = "lead", sync: bool = True,
           name: str | None = None, content: bytes | None = None, project: uuid.UUID | None = None) -> Any:
    """POST a file to the ingest route as a project member."""
    data = content if content is not None else Path(path).read_bytes()
    filename = name if name is not None else Path(path).name
    route = "/api/ingest-sync" if sync else "/api/ingest"
    return client.post(route, params={"project_id": str(project or world.project_a)}, headers=world.h(who),
                       files={"file": (filename, data, "application/octet-stream")})


def ingest_corpus(client: TestClient, world: World) -> dict[str, dict[str, Any]]:
    """Upload every Northwind file; return the documents by name."""
    out = {}
    for path in sorted(CORPUS.iterdir()):
        response = upload(client, world, path)
        assert response.status_code == 200, (path.name, response.text)
        out[path.name] = response.json()["document"]
    return out


def chunk_text(client: TestClient, world: World, artifact_id: str) -> str:
    """All extracted text of a document, as the detail route returns it."""
    response = client.get(f"/api/documents/{artifact_id}", params={"project_id": str(world.project_a)},
                          headers=world.h("member"))
    assert response.status_code == 200, response.text
    return "\n".join(page["text"] for page in response.json()["pages"])
