"""Document fixtures: the Northwind corpus, a real S3-protocol server on loopback, upload helpers."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import FIXTURES, World

CORPUS = FIXTURES / "northwind"
S3_KEYS = {"kap_s3_access_key_id": "testing", "kap_s3_secret_access_key": "testing-secret"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def s3_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server on loopback, spoken to over HTTP exactly as production speaks to S3."""
    binary = shutil.which("moto_server") or str(Path(__file__).resolve().parents[2] / ".venv/bin/moto_server")
    port = _free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    proc = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _wait_until_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError("moto_server exited")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("moto_server did not start")


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
