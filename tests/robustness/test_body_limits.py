"""One body-size policy chosen by the route, enforced while streaming, after authentication for uploads."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

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


def _upload_read(client: TestClient, world: World, who: str, project: uuid.UUID) -> tuple[int, str, int]:
    """POST a 3 MB upload straight to the ASGI app, 64 KB a message; the status, the error code
    and how many body messages the app read before it answered."""
    import anyio

    read, answer = 0, dict[str, Any]()
    part = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.txt\"\r\n"
            b"Content-Type: text/plain\r\n\r\n")
    messages = [part] + [b"Go-live is in March.\n" * 3000] * 48 + [b"\r\n--b--\r\n"]
    headers = [(k.lower().encode(), v.encode()) for k, v in world.h(who).items()]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/api/ingest-sync", "raw_path": b"/api/ingest-sync",
             "query_string": f"project_id={project}".encode(), "root_path": "", "server": ("testserver", 80),
             "client": ("127.0.0.1", 5000),
             "headers": [*headers, (b"content-type", b"multipart/form-data; boundary=b")]}

    async def receive() -> dict[str, Any]:
        nonlocal read
        if read >= len(messages):
            return {"type": "http.disconnect"}
        read += 1
        return {"type": "http.request", "body": messages[read - 1], "more_body": read < len(messages)}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] = answer.get("body", b"") + message.get("body", b"")

    # A thread of its own: a browser session of the suite may hold an event loop in this one.
    runner = threading.Thread(target=anyio.run, args=(client.app, scope, receive, send))
    runner.start()
    runner.join()
    body = json.loads(answer["body"])
    return int(answer["status"]), str(body.get("error", {}).get("code", "")), read


def test_an_upload_the_caller_may_not_make_is_refused_before_the_body(client: TestClient, world: World) -> None:
    """Not a member (404), a role too low (403), an archived project (409): no byte of the file is read."""
    assert _upload_read(client, world, "outsider", world.project_a) == (404, "not_found", 0)
    assert _upload_read(client, world, "member", world.project_a) == (403, "forbidden", 0)
    assert _upload_read(client, world, "lead", uuid.uuid4()) == (404, "not_found", 0)
    archived = client.delete(f"/api/projects/{world.project_b}", headers=world.h("org_owner"))
    assert archived.status_code == 200, archived.text
    assert _upload_read(client, world, "org_owner", world.project_b) == (409, "project_archived", 0)
    status, _, read = _upload_read(client, world, "lead", world.project_a)  # allowed: the whole file is read
    assert (status, read) == (200, 50)


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
