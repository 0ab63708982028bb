"""Ask fixtures: corpus uploads, and OpenAI-compatible chat and embeddings servers on loopback.

The servers are real HTTP peers (http.server on 127.0.0.1) that record every request
and answer from a script, so the product's own HTTP client code runs unchanged.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import FIXTURES, World

CORPUS = FIXTURES / "northwind"
QUESTIONS = json.loads((FIXTURES / "northwind-ask.json").read_text())["answerable"]
MODEL = "kap-test-model"


def upload(client: TestClient, world: World, name: str, content: bytes, *, project: uuid.UUID | None = None,
           who: str = "lead") -> dict[str, Any]:
    """Ingest one file synchronously into a project; return the document."""
    response = client.post("/api/ingest-sync", params={"project_id": str(project or world.project_a)},
                           headers=world.h(who), files={"file": (name, content, "application/octet-stream")})
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()["document"]
    return document


def upload_read(client: TestClient, world: World, name: str, content: bytes, *, project: uuid.UUID | None = None,
                who: str = "lead") -> dict[str, Any]:
    """Upload a file and, when it is a scan, run OCR over it from the Needs OCR lane, as a person would."""
    document = upload(client, world, name, content, project=project, who=who)
    if document["status"] == "needs_ocr" and shutil.which("tesseract") is not None:
        response = client.post("/api/ocr/resolve", params={"project_id": str(project or world.project_a),
                                                           "artifact_id": document["id"]},
                               json={"mode": "ocr"}, headers=world.h(who))
        assert response.status_code == 202, response.text
    return document


def ingest_corpus(client: TestClient, world: World, *, project: uuid.UUID | None = None,
                  who: str = "lead") -> dict[str, dict[str, Any]]:
    """Upload every Northwind file; return the documents by name."""
    return {p.name: upload_read(client, world, p.name, p.read_bytes(), project=project, who=who)
            for p in sorted(CORPUS.iterdir())}


def ask(client: TestClient, world: World, question: str, *, who: str = "member",
        project: uuid.UUID | None = None, **extra: Any) -> dict[str, Any]:
    """POST a question and return the 200 body."""
    response = client.post("/api/ask", params={"project_id": str(project or world.project_a)},
                           headers=world.h(who), json={"question": question, **extra})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def ask_client(make_client: Callable[..., TestClient]) -> TestClient:
    """A client with embeddings off (as in every test by default): extractive answers over full text."""
    return make_client(kap_embeddings="off")


class _Server(ThreadingHTTPServer):
    daemon_threads = True


@dataclass
class ChatServer:
    """An OpenAI-compatible /v1/chat/completions peer that answers from a script."""

    url: str = ""
    replies: list[Any] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def script(self, *replies: Any) -> None:
        """Queue replies: a string (the completion), an int (an HTTP error status) or 'HANG'."""
        self.replies.extend(replies)

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        self.requests.append(json.loads(handler.rfile.read(length)))
        self.headers.append({k.lower(): v for k, v in handler.headers.items()})
        reply = self.replies.pop(0) if self.replies else "NOT_FOUND"
        if reply == "HANG":
            self.release.wait(30)
            return
        if isinstance(reply, int):
            _send(handler, reply, {"error": {"message": "scripted failure"}})
            return
        _send(handler, 200, {"id": "chatcmpl-test", "object": "chat.completion", "model": MODEL,
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": reply}}]})


def fake_vector(text: str, dims: int) -> list[float]:
    """A deterministic bag-of-words vector: each word stem hashed into one of `dims` slots."""
    vector = [0.0] * dims
    for word in re.findall(r"\w+", text.lower()):
        slot = int(hashlib.md5(word[:5].encode()).hexdigest(), 16) % dims
        vector[slot] += 1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


@dataclass
class EmbeddingsServer:
    """An OpenAI-compatible /v1/embeddings peer: model `fake-<dims>` gives vectors of that size."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail: bool = False

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        body = json.loads(handler.rfile.read(length))
        self.requests.append(body)
        if self.fail:
            _send(handler, 500, {"error": {"message": "down"}})
            return
        dims = int(str(body["model"]).rsplit("-", 1)[1])
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [{"object": "embedding", "index": i, "embedding": fake_vector(t, dims)} for i, t in enumerate(texts)]
        _send(handler, 200, {"object": "list", "model": body["model"], "data": data})


def _send(handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _serve(peer: Any, route: str) -> Iterator[Any]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path != route:
                _send(self, 404, {"error": {"message": f"no route {self.path}"}})
                return
            peer.handle(self)

        def log_message(self, *args: Any) -> None:
            return None

    server = _Server(("127.0.0.1", 0), Handler)
    peer.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield peer
    finally:
        if hasattr(peer, "release"):
            peer.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    yield from _serve(ChatServer(), "/v1/chat/completions")


@pytest.fixture
def embeddings_server() -> Iterator[EmbeddingsServer]:
    yield from _serve(EmbeddingsServer(), "/v1/embeddings")


def corpus_path(name: str) -> Path:
    return CORPUS / name
