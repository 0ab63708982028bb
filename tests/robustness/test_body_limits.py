"""One body-size policy chosen by the route, enforced while streaming, after authentication for uploads."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.conftest import World
from tests.robustness.conftest import LiveServer, raw_post

MB = 1024 * 1024


def test_json_route_refuses_a_body_declared_multipart_above_the_json_limit(client: TestClient) -> None:
    body = b"x" * (2 * MB)
    response = client.post("/api/signoff/x", content=body,
                           headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "payload_too_large"


def test_json_route_refuses_an_unannounced_streamed_body(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted while reading
        for _ in range(40):
            yield b"x" * (64 * 1024)

    response = client.post("/api/signoff/x", content=chunks(),
                           headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert response.status_code == 413, response.text


def test_upload_from_anonymous_caller_is_401_before_the_body(client: TestClient, world: World) -> None:
    response = client.post("/api/ingest", params={"project_id": str(world.project_a)},
                           files={"file": ("a.txt", b"x" * (3 * MB), "text/plain")})
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized"


def test_upload_route_takes_a_file_above_the_json_limit(client: TestClient, world: World) -> None:
    data = ("Line of plain text for the upload limit.\n" * 60_000).encode()
    assert len(data) > 2 * MB
    response = client.post("/api/ingest-sync", params={"project_id": str(world.project_a)},
                           files={"file": ("big.txt", data, "text/plain")}, headers=world.h("owner"))
    assert response.status_code == 200, response.text


@pytest.mark.slow
def test_parallel_oversized_bodies_leave_memory_where_it_was(live_server: LiveServer) -> None:
    server = live_server.start()
    project = f"?project_id={uuid.uuid4()}"
    for _ in range(20):  # warm up: imports, pools and caches are in place before measuring
        raw_post(server.url, "/api/signoff/warm", headers={"Content-Type": "application/json"}, size=10,
                 chunked=False)
    before = server.rss_mb()
    statuses: list[int] = []
    targets = [("/api/signoff/x", True), ("/api/signoff/x", False), ("/api/projects", True),
               ("/api/ingest" + project, True)]

    def send(path: str, chunked: bool) -> None:
        statuses.append(raw_post(server.url, path, size=95 * MB, chunked=chunked,
                                 headers={"Content-Type": "multipart/form-data; boundary=kap"}))

    threads = [threading.Thread(target=send, args=t) for t in targets * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    after = server.rss_mb()
    print(f"\nRSS before {before:.1f} MB, after 8 parallel 95 MB bodies {after:.1f} MB; statuses {sorted(statuses)}")  # noqa: T201
    assert sorted(set(statuses)) == [401, 413], statuses
    assert after - before < 50, (before, after)
