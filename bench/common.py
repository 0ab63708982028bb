"""Helpers shared by the benchmarks: temporary databases and medians."""

from __future__ import annotations

import os
import statistics
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def sqlite_url(folder: Path) -> Iterator[str]:
    """A SQLite file in `folder`, or the kept file KAP_BENCH_SQLITE_PATH (padded once, reused by later runs)."""
    yield f"sqlite:///{os.environ.get('KAP_BENCH_SQLITE_PATH') or folder / 'bench.db'}"


@contextmanager
def postgres_url(admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """A fresh PostgreSQL database for one benchmark, dropped afterwards.

    BENCH_DB_PREFIX names it (default `kap_bench`), so runs side by side on one server can tell theirs apart.
    With KAP_BENCH_PG_DATABASE set, that database is used (created when missing) and kept: the scale
    benchmarks then pad it once and later runs add only their own project.
    """
    kept = os.environ.get("KAP_BENCH_PG_DATABASE")
    name = kept or f"{os.environ.get('BENCH_DB_PREFIX', 'kap_bench')}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        if not kept:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def median(values: list[float]) -> float:
    return statistics.median(values)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def out(line: str) -> None:
    print(line, flush=True)  # noqa: T201
