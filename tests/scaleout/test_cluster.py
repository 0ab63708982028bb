"""Scale-out, end to end: PostgreSQL with row-level security, Redis, an S3 server, two API processes, two workers.

Every process is a real `kap serve` or `kap worker` with its own data folder; what they share is what
production shares: the database, the Redis queue and rate-limit store, and the S3 buckets.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import pytest
from sqlalchemy import func, select

from kap.core.db import Database
from kap.core.settings import Settings
from kap.documents.models import Artifact, ArtifactChunk
from tests.conftest import FIXTURES, Factory, World, free_port

pytestmark = [pytest.mark.slow, pytest.mark.postgres_only]

FILES = ["Cutover notes.md", "Data conversion plan.md", "Integration inventory.csv", "Kickoff minutes 2026-01-13.docx",
         "SOW-2026-014 Northwind Workday.pdf", "Test strategy.txt"]
BUDGET = 12  # requests per user per window, shared by both API processes
TICK = re.compile(r"schedule tick (\S+) (claimed by|already claimed)")
S3_KEYS = {"KAP_S3_ACCESS_KEY_ID": "testing", "KAP_S3_SECRET_ACCESS_KEY": "testing-secret"}


@dataclass
class Node:
    """One Kap process of the cluster."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@dataclass
class Cluster:
    api: list[Node]
    workers: list[Node]
    env: dict[str, str]


def _start(name: str, args: list[str], env: dict[str, str], folder: Path, port: int = 0) -> Node:
    data = folder / name
    data.mkdir()
    log_path = data / "process.log"
    with log_path.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "kap", *args], env={**env, "KAP_DATA_DIR": str(data)},
                                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    return Node(name, proc, log_path, port)


def _wait_healthy(node: Node) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert node.proc.poll() is None, node.log()[-3000:]
        try:
            if httpx.get(f"{node.url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{node.name} did not start: {node.log()[-3000:]}")


def _start_of_a_minute() -> None:
    """Wait, if need be, for the first half of a minute, so both workers' first schedule checks share one."""
    second = time.time() % 60
    if second > 30:
        time.sleep(60 - second + 0.5)


@pytest.fixture
def cluster(settings: Settings, runtime: object, s3_url: str, redis_url: str, tmp_path: Path) -> Iterator[Cluster]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KAP_", "DEV_AUTH", "RATE_LIMIT_", "MAILGUN_"))}
    suffix = uuid.uuid4().hex[:10]
    env = {**base, **S3_KEYS, "KAP_DATABASE_URL": settings.database_url, "KAP_REDIS_URL": redis_url,
           "KAP_S3_ENDPOINT_URL": s3_url, "KAP_S3_BUCKET_ARTIFACTS": f"art-{suffix}",
           "KAP_S3_BUCKET_BACKUPS": f"bak-{suffix}", "DEV_AUTH": "1", "KAP_AUTO_MIGRATE": "0",
           "KAP_EMBEDDINGS": "off", "KAP_LOG_LEVEL": "INFO", "RATE_LIMIT_MAX": str(BUDGET),
           "RATE_LIMIT_WINDOW_SEC": "600"}
    nodes: list[Node] = []
    try:
        ports = [free_port(), free_port()]
        api = [_start(f"api{n}", ["serve", "--port", str(p)], {**env, "KAP_PORT": str(p)}, tmp_path, p)
               for n, p in enumerate(ports)]
        nodes += api
        _start_of_a_minute()
        workers = [_start(f"worker{n}", ["worker"], env, tmp_path) for n in range(2)]
        nodes += workers
        for node in api:
            _wait_healthy(node)
        yield Cluster(api, workers, env)
    finally:
        for node in nodes:
            node.stop()


def _wait_for(what: str, check: object, timeout: float, nodes: list[Node]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        for node in nodes:
            assert node.proc.poll() is None, f"{node.name} exited: {node.log()[-3000:]}"
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}: " + "\n".join(n.log()[-2000:] for n in nodes))


def _ready(db: Database, ids: list[uuid.UUID]) -> bool:
    with db.service_session() as session:
        states = session.scalars(select(Artifact.status).where(Artifact.id.in_(ids))).all()
    return len(states) == len(ids) and all(s in ("ready", "failed", "needs_ocr") for s in states)


def _ticks(worker: Node) -> list[tuple[str, bool]]:
    return [(m[1], m[2] == "claimed by") for m in TICK.finditer(worker.log())]


def _sweeps(workers: list[Node]) -> int:
    return sum(w.log().count("Executing kap.core.recovery.recover") for w in workers)


def test_two_api_processes_and_two_workers_share_the_queue_the_schedule_the_limit_and_the_buckets(
        cluster: Cluster, world: World, factory: Factory, db: Database) -> None:
    api, workers = cluster.api, cluster.workers
    every = api + workers

    # Async uploads through both API processes: each ingested once, by one of the workers.
    ids = []
    for n, name in enumerate(FILES):
        data = (FIXTURES / "northwind" / name).read_bytes()
        response = httpx.post(f"{api[n % 2].url}/api/ingest", params={"project_id": str(world.project_a)},
                              headers=world.h("lead"), files={"file": (name, data)}, timeout=60)
        assert response.status_code == 202, response.text
        ids.append(uuid.UUID(response.json()["document"]["id"]))
    _wait_for("the uploads to be ingested", lambda: _ready(db, ids), 60, every)
    with db.service_session() as session:
        rows = session.execute(select(Artifact.name, Artifact.status, Artifact.chunk_count)
                               .where(Artifact.id.in_(ids))).all()
        chunk_rows = dict(session.execute(select(ArtifactChunk.artifact_id, func.count())
                                          .where(ArtifactChunk.artifact_id.in_(ids))
                                          .group_by(ArtifactChunk.artifact_id)).all())
        distinct = dict(session.execute(select(ArtifactChunk.artifact_id, func.count(ArtifactChunk.seq.distinct()))
                                        .where(ArtifactChunk.artifact_id.in_(ids))
                                        .group_by(ArtifactChunk.artifact_id)).all())
    assert sorted(r.name for r in rows) == sorted(FILES)
    assert {r.status for r in rows} == {"ready"}, rows
    assert chunk_rows == distinct  # no chunk written twice
    assert all(count > 0 for count in chunk_rows.values())
    ingests = sum(w.log().count("Executing kap.documents.jobs.ingest_artifact") for w in workers)
    assert ingests == len(FILES)

    # The rate limit is one budget across both API processes.
    limited = {"X-Dev-User": str(factory.user(world.org1, "member"))}
    codes = [httpx.get(f"{api[i % 2].url}/api/me", headers=limited).status_code for i in range(BUDGET + 2)]
    assert codes == [200] * BUDGET + [429, 429]

    # A backup is written to the S3 server by one API process and restored through the other.
    made = httpx.post(f"{api[0].url}/api/backups/run", params={"project_id": str(world.project_a)},
                      headers=world.h("admin"), timeout=120)
    assert made.status_code == 200, made.text
    key = made.json()["key"]
    s3 = boto3.client("s3", endpoint_url=cluster.env["KAP_S3_ENDPOINT_URL"], region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing-secret")
    stored = s3.list_objects_v2(Bucket=cluster.env["KAP_S3_BUCKET_BACKUPS"])["Contents"]
    assert [(o["Key"], o["Size"]) for o in stored] == [(key, made.json()["size"])]
    restored = httpx.post(f"{api[1].url}/api/backups/restore",
                          params={"project_id": str(world.project_a), "backup_key": key},
                          headers=world.h("owner"), json={"target": "new"}, timeout=120)
    assert restored.status_code == 200, restored.text
    copy = restored.json()["project_id"]
    listed = httpx.get(f"{api[0].url}/api/documents", params={"project_id": copy}, headers=world.h("owner"))
    assert listed.status_code == 200, listed.text
    assert sorted(d["name"] for d in listed.json()["documents"]) == sorted(FILES)

    # The schedule: both workers run it; each minute's jobs are enqueued by one of them and run once.
    _wait_for("two schedule checks in each worker", lambda: all(len(_ticks(w)) >= 2 for w in workers), 100, every)
    claims = Counter(tick for w in workers for tick, won in _ticks(w) if won)
    seen = {tick for w in workers for tick, _ in _ticks(w)}
    assert seen == set(claims), claims  # every minute checked was claimed ...
    assert set(claims.values()) == {1}, claims  # ... by exactly one worker
    assert any(not won for w in workers for _, won in _ticks(w))  # the other worker saw the same minute and skipped it
    _wait_for("the claimed sweeps to run", lambda: _sweeps(workers) >= len(claims), 30, every)
    time.sleep(1)
    assert _sweeps(workers) == len(claims)
