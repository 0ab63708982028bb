"""Making backups: one streamed ZIP per project and day, recorded, audited and trimmed by age."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from kap import __version__
from kap.backups import archive, tables
from kap.backups.keys import backup_key, key_day, project_prefix
from kap.backups.models import BackupRun
from kap.core.audit import record_audit, record_telemetry
from kap.core.db import utcnow
from kap.core.errors import NotFound
from kap.core.models import Project
from kap.core.runtime import Runtime
from kap.core.storage import Storage

log = logging.getLogger("kap.backups")

NIGHTLY_CRON = "30 2 * * *"
NIGHTLY_AT = time(2, 30)


@dataclass
class Actor:
    """Who a backup or restore is done for (None for the nightly schedule)."""

    user_id: uuid.UUID | None = None
    label: str = "schedule"
    ip: str | None = None
    user_agent: str | None = None


@dataclass
class Written:
    key: str
    size: int
    entries: int
    row_counts: dict[str, int]
    replaced: bool
    skipped: bool = False
    missing_files: list[str] = field(default_factory=list)


def schema_revisions(session: Session) -> list[str]:
    """The migration heads the database is at."""
    return sorted(session.execute(text("select version_num from alembic_version")).scalars())


def next_backup_window(now: datetime) -> datetime:
    """When the nightly backup runs next (UTC)."""
    today = datetime.combine(now.date(), NIGHTLY_AT, tzinfo=now.tzinfo)
    return today if today > now else today + timedelta(days=1)


def last_backup(session: Session, project_id: uuid.UUID) -> dict[str, Any] | None:
    """The project's latest completed backup: key, when, size."""
    run = session.scalar(select(BackupRun).where(BackupRun.project_id == project_id, BackupRun.status == "done")
                         .order_by(BackupRun.finished_at.desc()).limit(1))
    if run is None:
        return None
    return {"key": run.key, "at": run.finished_at, "size": run.size, "entries": run.entry_count}


def backup_status(session: Session, project_id: uuid.UUID, now: datetime | None = None) -> dict[str, Any]:
    """For the scheduler status: the last backup, the next window, and the last failure if it came later."""
    last = last_backup(session, project_id)
    failed = session.scalar(select(BackupRun).where(BackupRun.project_id == project_id, BackupRun.status == "failed")
                            .order_by(BackupRun.started_at.desc()).limit(1))
    failure = None
    if failed is not None and (last is None or (failed.finished_at or failed.started_at) > last["at"]):
        failure = {"key": failed.key, "at": failed.finished_at or failed.started_at, "error": failed.error}
    return {"last": last, "next": next_backup_window(now or utcnow()), "last_failure": failure}


def _snapshot(session: Session) -> None:
    """Read the whole backup from one snapshot (PostgreSQL; SQLite's read transaction is one already)."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def write_backup(session: Session, runtime: Runtime, project: Project, key: str) -> Written:
    """Stream one project's rows and files into a ZIP stored under `key`."""
    replaced = runtime.storage.backups.exists(key)
    writer = archive.BackupWriter(runtime.storage.backups, key)
    try:
        counts, files = _write_tables(writer, session, project.id)
        missing = _write_files(writer, runtime.storage.artifacts, files)
        manifest = _manifest(session, project, counts, files, missing)
        size = writer.close(manifest)
    except BaseException as exc:
        writer.abort(exc)
        raise
    return Written(key, size, len(writer.entries), counts, replaced, missing_files=missing)


def _write_tables(writer: archive.BackupWriter, session: Session,
                  project_id: uuid.UUID) -> tuple[dict[str, int], dict[str, tuple[str, str, int]]]:
    counts: dict[str, int] = {}
    files: dict[str, tuple[str, str, int]] = {}
    for table in tables.backup_tables():
        count = 0
        with writer.entry(f"data/{table.name}.jsonl", "data", large=True) as out:
            for row in tables.iter_rows(session, table, project_id):
                out.write(json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode() + b"\n")
                count += 1
                if table.name == "artifacts":
                    files[row["id"]] = (row["storage_key"], row["name"], int(row["size"] or 0))
        counts[table.name] = count
    return counts, files


def _write_files(writer: archive.BackupWriter, storage: Storage, files: dict[str, tuple[str, str, int]]) -> list[str]:
    missing = []
    for artifact_id, (key, name, size) in files.items():
        try:
            source = storage.open(key)
        except NotFound:
            missing.append(artifact_id)
            continue
        with source:
            writer.add_stream(artifact_entry(artifact_id, name), "artifact", source, size_hint=size)
    return missing


def artifact_entry(artifact_id: str, name: str) -> str:
    """The entry name of a document's file inside a backup."""
    return f"artifacts/{uuid.UUID(artifact_id).hex}/{archive.safe_name(name)}"


def _manifest(session: Session, project: Project, counts: dict[str, int], files: dict[str, tuple[str, str, int]],
              missing: list[str]) -> dict[str, Any]:
    return {
        "format": archive.FORMAT,
        "format_version": archive.FORMAT_VERSION,
        "kap_version": __version__,
        "schema_revisions": schema_revisions(session),
        "org_id": str(project.org_id),
        "project_id": str(project.id),
        "project_name": project.name,
        "created_at": utcnow().isoformat(),
        "row_counts": counts,
        "columns": {t.name: [c.name for c in t.c] for t in tables.backup_tables()},
        "artifacts": {aid: {"entry": artifact_entry(aid, name), "name": name}
                      for aid, (_, name, _) in files.items() if aid not in missing},
        "missing_files": missing,
    }


def backup_project(runtime: Runtime, project_id: uuid.UUID, *, now: datetime | None = None,
                   actor: Actor | None = None, skip_existing: bool = False, trigger: str = "manual") -> Written:
    """Back up one project for today's date; a same-day rerun replaces (or, with skip_existing, skips)."""
    now = now or utcnow()
    actor = actor or Actor()
    day = now.date()
    with runtime.db.service_session() as session, session.begin():
        _snapshot(session)
        project = session.get(Project, project_id)
        if project is None:
            raise NotFound("project not found")
        org_id, key = project.org_id, backup_key(project.org_id, project.id, day)
        if skip_existing and _done_today(session, project.id, day) and runtime.storage.backups.exists(key):
            return Written(key, runtime.storage.backups.size(key), 0, {}, False, skipped=True)
        try:
            written = write_backup(session, runtime, project, key)
        except Exception as exc:
            failure: Exception | None = exc
        else:
            failure = None
    if failure is not None:
        _record_failure(runtime, org_id, project_id, key, day, trigger, failure)
        raise failure
    _record_success(runtime, org_id, project_id, day, trigger, written, actor, now)
    return written


def _done_today(session: Session, project_id: uuid.UUID, day: date) -> bool:
    return session.scalar(select(BackupRun.id).where(BackupRun.project_id == project_id, BackupRun.day == day,
                                                     BackupRun.status == "done").limit(1)) is not None


def _record_success(runtime: Runtime, org_id: uuid.UUID, project_id: uuid.UUID, day: date, trigger: str,
                    written: Written, actor: Actor, now: datetime) -> None:
    with runtime.db.service_transaction() as session:
        # A same-day rerun replaces the stored file, so it replaces the record too: one row per key.
        session.execute(update(BackupRun).where(BackupRun.project_id == project_id, BackupRun.key == written.key,
                                                BackupRun.status == "done").values(status="trimmed"))
        session.add(BackupRun(org_id=org_id, project_id=project_id, key=written.key, day=day, status="done",
                              trigger=trigger, size=written.size, entry_count=written.entries,
                              row_counts=written.row_counts, started_at=now, finished_at=utcnow()))
        record_audit(session, org_id=org_id, project_id=project_id, actor_id=actor.user_id, actor_label=actor.label,
                     action="backup.created", target_type="backup", target_id=written.key.rsplit("/", 1)[-1],
                     details={"key": written.key, "size": written.size, "entries": written.entries,
                              "rows": written.row_counts,
                              "replaced": written.replaced, "trigger": trigger,
                              "missing_files": written.missing_files},
                     ip=actor.ip, user_agent=actor.user_agent)


def _record_failure(runtime: Runtime, org_id: uuid.UUID, project_id: uuid.UUID, key: str, day: date, trigger: str,
                    exc: BaseException) -> None:
    error = f"{exc.__class__.__name__}: {exc}"[:500]
    log.error("backup of project %s failed: %s", project_id, error)
    record_telemetry(runtime.db, kind="backup_failed", org_id=org_id, project_id=project_id,
                     details={"key": key, "error": error, "trigger": trigger})
    try:
        with runtime.db.service_transaction() as session:
            session.add(BackupRun(org_id=org_id, project_id=project_id, key=key, day=day, status="failed",
                                  trigger=trigger, error=error, finished_at=utcnow()))
    except Exception:  # the database may be what failed; telemetry already tried
        log.warning("backup failure of %s not recorded", project_id, exc_info=True)


def trim_project(runtime: Runtime, org_id: uuid.UUID, project_id: uuid.UUID, today: date,
                 actor: Actor | None = None) -> list[str]:
    """Delete a project's backups older than the retention window; return the keys removed."""
    keep_from = today - timedelta(days=runtime.settings.kap_backup_retention_days - 1)
    storage = runtime.storage.backups
    old = [k for k in storage.list(project_prefix(org_id, project_id)) if (d := key_day(k)) and d < keep_from]
    if not old:
        return []
    for key in old:
        storage.delete(key)
    actor = actor or Actor()
    with runtime.db.service_transaction() as session:
        session.execute(update(BackupRun).where(BackupRun.project_id == project_id, BackupRun.key.in_(old))
                        .values(status="trimmed"))
        if session.get(Project, project_id) is not None:
            record_audit(session, org_id=org_id, project_id=project_id, actor_id=actor.user_id,
                         actor_label=actor.label, action="backup.trimmed", target_type="backup",
                         target_id=str(project_id),
                         details={"keys": old, "retention_days": runtime.settings.kap_backup_retention_days})
    return old


def active_projects(runtime: Runtime) -> list[uuid.UUID]:
    """Projects the nightly job backs up: every one not archived."""
    with runtime.db.service_session() as session:
        return list(session.scalars(select(Project.id).where(Project.archived_at.is_(None))
                                    .order_by(Project.created_at, Project.id)))


def archived_projects(runtime: Runtime) -> set[uuid.UUID]:
    """Projects that are archived: the nightly job neither backs them up nor trims their backups."""
    with runtime.db.service_session() as session:
        return set(session.scalars(select(Project.id).where(Project.archived_at.is_not(None))))


def _backed_up_projects(runtime: Runtime) -> set[tuple[uuid.UUID, uuid.UUID]]:
    found = set()
    for key in runtime.storage.backups.list("backups/"):
        parts = key.split("/")
        if len(parts) == 4:
            try:
                found.add((uuid.UUID(parts[1]), uuid.UUID(parts[2])))
            except ValueError:
                continue
    return found


def run_nightly(runtime: Runtime, now: datetime | None = None, *,
                projects: Collection[uuid.UUID] | None = None) -> dict[str, Any]:
    """Back up every active project once for the day, then trim every project's old backups.

    `projects` limits the pass to some projects (every project by default).
    """
    now = now or utcnow()
    done, skipped, failed = 0, 0, 0
    for project_id in active_projects(runtime):
        if projects is not None and project_id not in projects:
            continue
        try:
            written = backup_project(runtime, project_id, now=now, skip_existing=True, trigger="nightly")
        except Exception:
            failed += 1  # recorded by backup_project; one project never stops the others
            continue
        skipped += written.skipped
        done += not written.skipped
    trimmed = 0
    archived = archived_projects(runtime)  # an archived project's schedules stop: its backups are kept
    for org_id, project_id in sorted(_backed_up_projects(runtime)):
        if project_id not in archived and (projects is None or project_id in projects):
            trimmed += len(trim_project(runtime, org_id, project_id, now.date()))
    return {"backed_up": done, "skipped": skipped, "failed": failed, "trimmed": trimmed}
