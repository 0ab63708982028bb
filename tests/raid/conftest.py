"""RAID fixtures: the Northwind corpus uploaded through the real ingest route, list helpers."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import FIXTURES, World

CORPUS = FIXTURES / "northwind"
GOLD = json.loads((FIXTURES / "raid" / "northwind-raid-gold.json").read_text())["items"]


def upload(client: TestClient, world: World, path: Path | None = None, *, name: str | None = None,
           content: bytes | None = None, project: uuid.UUID | None = None, who: str = "lead") -> dict[str, Any]:
    """Upload a file through /api/ingest-sync; the RAID job runs after the commit."""
    data = content if content is not None else Path(path or "").read_bytes()
    filename = name or Path(path or "").name
    response = client.post("/api/ingest-sync", params={"project_id": str(project or world.project_a)},
                           headers=world.h(who), files={"file": (filename, data, "application/octet-stream")})
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()["document"]
    return document


def items(client: TestClient, world: World, project: uuid.UUID | None = None, who: str = "member",
          **filters: str) -> list[dict[str, Any]]:
    response = client.get("/api/raid", params={"project_id": str(project or world.project_a), **filters},
                          headers=world.h(who))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True
    found: list[dict[str, Any]] = body["items"]
    return found


def by_ref(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["ref"]: i for i in found if i["ref"]}


@pytest.fixture
def northwind(client: TestClient, world: World) -> dict[str, dict[str, Any]]:
    """Every Northwind document uploaded to project A; the documents by name."""
    return {path.name: upload(client, world, path) for path in sorted(CORPUS.iterdir())}
