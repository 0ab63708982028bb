"""The nightly job: one backup per active project per day, retention by date, scheduler status."""

from __future__ import annotations

import io
import zipfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from kap.backups.keys import key_day, project_prefix
from kap.backups.writer import (
    backup_project,
    backup_status,
    last_backup,
    next_backup_window,
    run_nightly,
    trim_project,
)
from kap.cli import app as cli
from kap.core.models import AuditEvent, TelemetryEvent
from kap.core.settings import load_settings
from kap.core.storage import S3Storage, Storages
from tests.backups.conftest import S3_KEYS, pa, read_zip, run_backup, runtime_of, upload
from tests.conftest import World, free_port


def test_retention_over_twenty_days_keeps_fourteen(bk_client: TestClient, world: World) -> None:
    rt = runtime_of(bk_client)
    start = datetime(2026, 3, 1, 2, 30, tzinfo=UTC)
    for day in range(20):
        now = start + timedelta(days=day)
        backup_project(rt, world.project_a, now=now, trigger="nightly")
        trim_project(rt, world.org1, world.project_a, now.date())
    keys = list(rt.storage.backups.list(project_prefix(world.org1, world.project_a)))
    days = sorted(d for k in keys if (d := key_day(k)))
    assert len(keys) == 14 == rt.settings.kap_backup_retention_days
    assert days[0] == (start + timedelta(days=6)).date()
    assert days[-1] == (start + timedelta(days=19)).date()
    with rt.db.service_session() as s:
        actions = s.scalars(select(AuditEvent.action).where(AuditEvent.project_id == world.project_a)).all()
    assert actions.count("backup.trimmed") == 6
    assert actions.count("backup.created") == 20


def test_nightly_run_is_idempotent_per_day(client: TestClient, world: World) -> None:
    rt = runtime_of(client)
    upload(client, world, "notes.txt", b"nightly backup notes")
    now = datetime(2026, 2, 3, 2, 30, tzinfo=UTC)
    first = run_nightly(rt, now)
    second = run_nightly(rt, now + timedelta(hours=1))
    assert first["backed_up"] >= 3
    assert first["failed"] == 0
    assert second["backed_up"] == 0
    assert second["skipped"] == first["backed_up"] + first["skipped"]
    keys = list(rt.storage.backups.list(project_prefix(world.org1, world.project_a)))
    assert keys == [f"{project_prefix(world.org1, world.project_a)}20260203.zip"]
    with rt.db.service_session() as s:
        status = last_backup(s, world.project_a)
    assert status is not None
    assert status["key"] == keys[0]


def test_next_window_is_the_coming_night() -> None:
    assert next_backup_window(datetime(2026, 5, 1, 1, 0, tzinfo=UTC)) == datetime(2026, 5, 1, 2, 30, tzinfo=UTC)
    assert next_backup_window(datetime(2026, 5, 1, 3, 0, tzinfo=UTC)) == datetime(2026, 5, 2, 2, 30, tzinfo=UTC)


def test_the_nightly_job_is_on_the_schedule() -> None:
    from kap.backups.jobs import nightly_backups
    from kap.core.jobs import huey

    assert nightly_backups.task_class in huey._registry._periodic_tasks


def test_backup_verify_command(client: TestClient, world: World, tmp_path: object) -> None:
    upload(client, world, "notes.txt", b"verify me " * 100)
    made = run_backup(client, world)
    path = tmp_path / "backup.zip"  # type: ignore[operator]
    data = read_zip(runtime_of(client), made["key"])
    path.write_bytes(data)
    result = CliRunner().invoke(cli, ["backup", "verify", str(path)])
    assert result.exit_code == 0, result.output
    assert "intact" in result.output
    assert "every sha256 matches" in result.output
    bad = bytearray(data)
    info = next(i for i in zipfile.ZipFile(io.BytesIO(data)).infolist() if i.filename.startswith("artifacts/"))
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    bad[start + info.compress_size // 2] ^= 0x20
    path.write_bytes(bytes(bad))
    result = CliRunner().invoke(cli, ["backup", "verify", str(path)])
    assert result.exit_code == 1
    assert "NOT intact" in result.output
    assert client.get("/api/backups", params=pa(world), headers=world.h("admin")).status_code == 200


def test_a_failed_backup_goes_to_telemetry_and_the_status(client: TestClient, world: World,
                                                          base_settings: dict[str, Any]) -> None:
    rt = runtime_of(client)
    upload(client, world, "notes.txt", b"this backup cannot be stored")
    dead = load_settings(**{**base_settings, "kap_s3_endpoint_url": f"http://127.0.0.1:{free_port()}", **S3_KEYS})
    unreachable = replace(rt, storage=Storages(rt.storage.artifacts, S3Storage(dead, "backups")))
    with pytest.raises(Exception, match=r"."):  # noqa: B017  whatever the S3 client raises, the run records it
        backup_project(unreachable, world.project_a, now=datetime(2026, 4, 1, 2, 30, tzinfo=UTC))
    with rt.db.service_session() as s:
        kinds = s.scalars(select(TelemetryEvent.kind).where(TelemetryEvent.project_id == world.project_a)).all()
        status = backup_status(s, world.project_a, datetime(2026, 4, 1, 3, 0, tzinfo=UTC))
    assert "backup_failed" in kinds
    assert status["last"] is None
    assert status["last_failure"]["key"].endswith("20260401.zip")
    assert status["next"] == datetime(2026, 4, 2, 2, 30, tzinfo=UTC)
