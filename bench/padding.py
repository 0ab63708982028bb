"""Fast bulk padding for the scale benchmarks: generated chunks written straight to the tables.

The rows are the ones ingest writes (`chunk_rows`: the same columns, a ready text document per
`per_artifact` chunks). The search indexes are filled by the database itself, as for every
other write: SQLite's FTS5 triggers (exact and stemmed) and PostgreSQL's generated
`tsv` / `tsv_en` columns. Only the transport differs: one transaction per batch of
documents, SQLite `executemany`, PostgreSQL `COPY`. A million chunks take minutes, not hours.
"""

from __future__ import annotations

import io
import random
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, func, insert, select

from bench.common import out
from kap.core.db import Database, utcnow
from kap.core.models import Org, Project
from kap.documents.models import Artifact, ArtifactChunk

TextSource = Callable[[random.Random], str]
CHUNK_COLUMNS = ("id", "org_id", "project_id", "artifact_id", "seq", "page", "locator", "text", "created_at")
BATCH = 20_000


@dataclass(frozen=True)
class Target:
    """Where padding goes: an org and one of its projects."""

    org: uuid.UUID
    project: uuid.UUID


def zipf_source(vocabulary: list[str], words: int = 120, pool: int = 2_000_000, seed: int = 11) -> TextSource:
    """Prose-like text: windows of `words` words out of one long Zipf-distributed word stream (cheap at 1M chunks)."""
    rng = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    stream = rng.choices(vocabulary, weights=weights, k=pool)

    def text(r: random.Random) -> str:
        start = r.randrange(0, pool - words)
        return " ".join(stream[start:start + words])

    return text


def pad(db: Database, target: Target, count: int, source: TextSource, *, seed: int = 7,
        per_artifact: int = 500, label: str = "Generated") -> int:
    """Add `count` generated chunks to the project, `per_artifact` per ready text document; return `count`."""
    rng = random.Random(seed)
    started, done = time.perf_counter(), 0
    while done < count:
        batch = min(BATCH, count - done)
        artifacts, chunks = _batch(target, batch, per_artifact, source, rng, f"{label} {done}")
        with db.service_transaction() as s:
            s.execute(insert(Artifact), artifacts)
            if db.is_postgres:
                _copy(s, chunks)
            else:
                s.execute(insert(cast(Table, ArtifactChunk.__table__)), chunks)
        done += batch
    if count:
        out(f"    padded {count:,} chunks in {time.perf_counter() - started:.0f} s")
    return count


def pad_database(db: Database, org: uuid.UUID, total: int, source: TextSource, *, per_project: int = 100_000,
                 seed: int = 101, workers: int = 2) -> int:
    """Add projects (every other one in a new org) of up to `per_project` chunks until the database holds `total`.

    On PostgreSQL `workers` connections load at once (the search columns are computed by the server).
    """
    with db.service_transaction() as s:
        have = int(s.scalar(select(func.count()).select_from(ArtifactChunk)) or 0)
    jobs = []
    for n in range(max(0, (total - have + per_project - 1) // per_project)):
        jobs.append((new_project(db, org if n % 2 else None, f"Filler {n}"), min(per_project, total - have), n))
        have += jobs[-1][1]
    with ThreadPoolExecutor(max_workers=workers if db.is_postgres else 1) as pool:
        made = sum(pool.map(lambda job: pad(db, job[0], job[1], source, seed=seed + job[2], label="Filler"), jobs))
    if db.is_postgres:
        analyze(db)
    return made


def new_project(db: Database, org: uuid.UUID | None, name: str) -> Target:
    """A project in `org`, or in a new org when `org` is None."""
    target = Target(org or uuid.uuid4(), uuid.uuid4())
    with db.service_transaction() as s:
        if org is None:
            s.add(Org(id=target.org, name=f"{name} org"))
            s.flush()
        s.add(Project(id=target.project, org_id=target.org, name=name))
    return target


def analyze(db: Database) -> None:
    """VACUUM ANALYZE the padded tables on PostgreSQL, as autovacuum soon would after a bulk load.

    It sets the visibility map (a capped count can then skip the heap) and empties the GIN pending lists.
    """
    with db.service_engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("VACUUM ANALYZE artifact_chunks")
        conn.exec_driver_sql("VACUUM ANALYZE artifacts")


def _batch(target: Target, count: int, per_artifact: int, source: TextSource, rng: random.Random,
           label: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    now = utcnow()
    artifacts: list[dict[str, Any]] = []
    chunks: list[dict[str, Any]] = []
    for first in range(0, count, per_artifact):
        artifact_id, size = uuid.uuid4(), min(per_artifact, count - first)
        artifacts.append({"id": artifact_id, "org_id": target.org, "project_id": target.project,
                          "name": f"{label}-{first}.txt", "media_type": "text/plain", "kind": "txt", "size": 1,
                          "sha256": uuid.uuid4().hex * 2, "storage_key": f"bench/{artifact_id}", "status": "ready",
                          "status_reason": None, "page_count": 1, "chunk_count": size, "ocr_pages": [],
                          "version": 1, "shareable": False, "uploaded_by": None, "meta": {},
                          "created_at": now, "updated_at": now, "parent_id": None})
        chunks.extend({"id": uuid.uuid4(), "org_id": target.org, "project_id": target.project,
                       "artifact_id": artifact_id, "seq": seq, "page": None, "locator": "",
                       "text": source(rng), "created_at": now} for seq in range(size))
    return artifacts, chunks


def _copy(session: Any, rows: list[dict[str, Any]]) -> None:
    """COPY the rows into artifact_chunks (PostgreSQL computes the generated search columns)."""
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cur, cur.copy(f"COPY artifact_chunks ({', '.join(CHUNK_COLUMNS)}) FROM STDIN") as copy:
        buffer = io.StringIO()
        for row in rows:
            buffer.write("\t".join(_copy_value(row[c]) for c in CHUNK_COLUMNS) + "\n")
        copy.write(buffer.getvalue())


def _copy_value(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
