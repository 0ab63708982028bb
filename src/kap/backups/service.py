"""Backups for one project: list, look inside, download, run now, store-and-re-ingest, restore.

Reads and files go through the caller's ProjectContext; whole-project backup and
restore run as trusted service work (DESIGN §3) on behalf of that caller. Never commits.
"""

from __future__ import annotations

import mimetypes
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kap.backups import archive
from kap.backups.keys import key_day, own_key, project_prefix
from kap.backups.models import BackupRun, RestoreActivity
from kap.backups.restore import Outcome, entry_stream, restore
from kap.backups.schemas import (
    BackupContents,
    BackupList,
    BackupRead,
    EntryRead,
    ReingestResult,
    RestoreActivityRead,
    RestoreResult,
    RunResult,
)
from kap.backups.writer import Actor, backup_project, last_backup, next_backup_window, trim_project
from kap.core.db import utcnow
from kap.core.deps import ProjectContext
from kap.core.errors import Busy, NotFound, ValidationFailed
from kap.core.jobs import enqueue_after_commit
from kap.core.links import document_link, project_link
from kap.core.runtime import Runtime
from kap.core.scope import ProjectScope
from kap.documents import ingest
from kap.documents import service as documents
from kap.documents.jobs import delete_stored_files
from kap.documents.models import Artifact


def actor_of(ctx: ProjectContext) -> Actor:
    """The caller, as the actor of service work done for them."""
    return Actor(user_id=ctx.user_id, label=ctx.identity.label, ip=ctx.ip, user_agent=ctx.user_agent)


def _release(session: Session) -> None:
    """End the request's read-only snapshot before service work writes on another connection."""
    if not (session.new or session.dirty or session.deleted):
        session.rollback()


def _spool_dir(runtime: Runtime) -> Any:
    return runtime.settings.kap_data_dir.resolve() / "tmp"


def open_reader(ctx: ProjectContext, runtime: Runtime, key: str | None, stack: ExitStack) -> archive.BackupReader:
    """Open one of the project's backups (the one 404 for any other key), checked and ready to read."""
    key = own_key(ctx.org_id, ctx.project_id, key)
    if not runtime.storage.backups.exists(key):
        raise NotFound("backup not found", code="backup_not_found")
    reader = stack.enter_context(archive.open_backup(runtime.storage.backups, key, _spool_dir(runtime)))
    archive.check_owner(reader.manifest, ctx.org_id, ctx.project_id)  # a ZIP of another project put here
    return reader


def _is_own_backup(ctx: ProjectContext, runtime: Runtime, key: str) -> bool:
    try:
        with ExitStack() as stack:
            open_reader(ctx, runtime, key, stack)
    except archive.BackupInvalid:
        return False
    return True


def list_backups(ctx: ProjectContext, runtime: Runtime) -> BackupList:
    """The project's stored backups, newest first, with size and entry count."""
    storage = runtime.storage.backups
    runs = {r.key: r for r in ctx.session.scalars(
        select(BackupRun).where(BackupRun.project_id == ctx.project_id, BackupRun.status == "done"))}
    found = []
    for key in storage.list(project_prefix(ctx.org_id, ctx.project_id)):
        day = key_day(key)
        if day is None:
            continue
        run = runs.get(key)
        if run is None and not _is_own_backup(ctx, runtime, key):  # not written here: its manifest decides
            continue
        found.append(BackupRead(key=key, date=day, size=storage.size(key), entries=run.entry_count if run else None,
                                created_at=run.finished_at if run else None))
    found.sort(key=lambda b: b.date, reverse=True)
    return BackupList(backups=found, retention_days=runtime.settings.kap_backup_retention_days,
                      last_backup=last_backup(ctx.session, ctx.project_id), next_backup=next_backup_window(utcnow()))


def contents(ctx: ProjectContext, runtime: Runtime, key: str | None) -> BackupContents:
    """What a backup holds: each entry with its size, type and hash."""
    with ExitStack() as stack:
        reader = open_reader(ctx, runtime, key, stack)
        manifest = reader.manifest
        names = _artifact_names(manifest)
        entries = [_entry_read(reader, name, names) for name in reader.names()]
        return BackupContents(key=str(key), created_at=manifest.get("created_at"),
                              kap_version=manifest.get("kap_version"),
                              schema_revisions=list(manifest.get("schema_revisions") or []),
                              row_counts=dict(manifest.get("row_counts") or {}), entries=entries)


def _artifact_names(manifest: dict[str, Any]) -> dict[str, tuple[uuid.UUID, str]]:
    out = {}
    for raw_id, record in (manifest.get("artifacts") or {}).items():
        if isinstance(record, dict) and isinstance(record.get("entry"), str):
            try:
                out[record["entry"]] = (uuid.UUID(str(raw_id)), str(record.get("name") or ""))
            except ValueError:
                continue
    return out


def _entry_read(reader: archive.BackupReader, name: str, names: dict[str, tuple[uuid.UUID, str]]) -> EntryRead:
    record = reader.record(name)
    if name.startswith("data/"):
        table = name.removeprefix("data/").removesuffix(".jsonl")
        rows = (reader.manifest.get("row_counts") or {}).get(table)
        return EntryRead(name=name, size=record["size"], type="data", media_type="application/x-ndjson",
                         sha256=record["sha256"], rows=rows if isinstance(rows, int) else None)
    artifact_id, original = names.get(name, (None, None))
    media = mimetypes.guess_type(original or name)[0] or "application/octet-stream"
    return EntryRead(name=name, size=record["size"], type="artifact", media_type=media, sha256=record["sha256"],
                     artifact_id=artifact_id, original_name=original)


def open_download(ctx: ProjectContext, runtime: Runtime, key: str | None,
                  entry: str | None) -> tuple[str, str, int, Iterator[bytes]]:
    """A backup (or one entry of it) as a stream: file name, media type, size, pieces."""
    if not entry:
        key = own_key(ctx.org_id, ctx.project_id, key)
        with ExitStack() as check:
            open_reader(ctx, runtime, key, check)
        size = runtime.storage.backups.size(key)
        return key.rsplit("/", 1)[-1], "application/zip", size, documents.iter_stream(runtime.storage.backups.open(key))
    stack = ExitStack()
    try:
        reader = open_reader(ctx, runtime, key, stack)
        if entry not in reader.infos or entry == archive.MANIFEST:
            raise NotFound("no such entry in the backup", code="entry_not_found")
        info = _entry_read(reader, entry, _artifact_names(reader.manifest))
    except BaseException:
        stack.close()
        raise
    return (info.original_name or entry.rsplit("/", 1)[-1], info.media_type, info.size,
            _pieces_then_close(reader.chunks(entry), stack))


def _pieces_then_close(pieces: Iterator[bytes], stack: ExitStack) -> Iterator[bytes]:
    try:
        yield from pieces
    finally:
        stack.close()


def run_now(ctx: ProjectContext, runtime: Runtime) -> RunResult:
    """Back up the project now (a same-day backup is replaced), then apply retention."""
    _release(ctx.session)
    now = utcnow()
    written = backup_project(runtime, ctx.project_id, now=now, actor=actor_of(ctx), trigger="manual")
    trim_project(runtime, ctx.org_id, ctx.project_id, now.date(), actor_of(ctx))
    return RunResult(key=written.key, size=written.size, entries=written.entries, row_counts=written.row_counts,
                     replaced=written.replaced)


def restore_project(ctx: ProjectContext, runtime: Runtime, key: str | None, target: str,
                    confirm: str | None) -> RestoreResult:
    """Restore the whole project from a backup into a new project, or over this one after confirmation."""
    if target == "replace" and (confirm or "").strip() != ctx.project_name:
        raise ValidationFailed("to restore over this project, confirm with its exact name",
                               code="confirm_required", details={"field": "confirm"})
    project_name = ctx.project_name
    with ExitStack() as stack:
        reader = open_reader(ctx, runtime, key, stack)
        _release(ctx.session)
        target_id, outcome = restore(runtime, reader, org_id=ctx.org_id, project_id=ctx.project_id,
                                     project_name=project_name, target=target, key=str(key), actor=actor_of(ctx))
    return _restore_result(target_id, target, str(key), outcome)


def _restore_result(target_id: uuid.UUID, target: str, key: str, outcome: Outcome) -> RestoreResult:
    return RestoreResult(project_id=target_id, target=target,
                         backup_key=key, row_counts=outcome.row_counts, files=outcome.files,
                         skipped_rows={k: v for k, v in outcome.skipped.items() if v},
                         reindex_queued=len(outcome.reindex))


def _find_entry(reader: archive.BackupReader, artifact_name: str | None) -> str:
    """The entry a caller names: `artifacts/<id>/<file>` exactly, or `artifacts/<file>` when unambiguous."""
    if not artifact_name or not artifact_name.startswith("artifacts/"):
        raise NotFound("no such file in the backup", code="entry_not_found")
    if artifact_name in reader.infos:
        return artifact_name
    wanted = artifact_name.removeprefix("artifacts/")
    matches = [n for n in reader.names("artifacts/") if n.rsplit("/", 1)[-1] == wanted
               or _artifact_names(reader.manifest).get(n, (None, ""))[1] == wanted]
    if len(matches) != 1:
        raise NotFound("no such file in the backup" if not matches else "several files have that name: "
                       "give artifacts/<id>/<file>", code="entry_not_found")
    return matches[0]


def store_and_reingest(ctx: ProjectContext, runtime: Runtime, key: str | None,
                       artifact_name: str | None) -> ReingestResult:
    """Store a file from a backup as a new version of its document (or a new one) and ingest it."""
    with ExitStack() as stack:
        reader = open_reader(ctx, runtime, key, stack)
        entry = _find_entry(reader, artifact_name)
        artifact_id, original = _artifact_names(reader.manifest).get(entry, (None, entry.rsplit("/", 1)[-1]))
        existing = _existing_document(ctx, artifact_id)
        if existing is not None:
            artifact = _new_version(ctx, runtime, existing, entry_stream(reader, entry), original)
            mode = "new_version"
        else:
            result = documents.upload(ctx, runtime, entry_stream(reader, entry), original or None, wait=True)
            artifact = documents.get_artifact(ctx, result.document.id)
            mode = "new_document"
    _record_reingest(ctx, str(key), entry, artifact, mode)
    return ReingestResult(artifact_id=artifact.id, link=document_link(artifact.project_id, artifact.id),
                          status=artifact.status,
                          mode=mode, version=artifact.version)


def _existing_document(ctx: ProjectContext, artifact_id: uuid.UUID | None) -> Artifact | None:
    if artifact_id is None:
        return None
    return ctx.session.scalar(select(Artifact).where(Artifact.id == artifact_id,
                                                     Artifact.project_id == ctx.project_id))


def _new_version(ctx: ProjectContext, runtime: Runtime, artifact: Artifact, stream: Any, name: str) -> Artifact:
    """Put the backup's bytes under the document's next storage key and extract them like an upload."""
    if artifact.status in ("queued", "processing"):
        raise Busy("the document is being processed; try again when it is done")
    storage = runtime.storage.artifacts
    staged = ingest.stage(runtime.settings, stream, name)
    try:
        key = _next_key(storage, artifact)
        with staged.path.open("rb") as handle:
            storage.put(key, handle)
        try:
            return _apply_version(ctx, runtime, artifact.id, staged, key)
        except BaseException:
            storage.delete(key)
            raise
    finally:
        staged.cleanup()


def _next_key(storage: Any, artifact: Artifact) -> str:
    last = artifact.storage_key.rsplit("/", 1)[-1]
    n = int(last) + 1 if last.isdigit() else artifact.version + 1
    while storage.exists(key := ingest.storage_key(artifact.org_id, artifact.project_id, artifact.id, n)):
        n += 1
    return key


def _apply_version(ctx: ProjectContext, runtime: Runtime, artifact_id: uuid.UUID, staged: ingest.Staged,
                   key: str) -> Artifact:
    _release(ctx.session)  # extraction is slow: hold no snapshot across it (see documents.service)
    artifact = documents.get_artifact(ctx, artifact_id)
    tree = ingest.extract_tree(runtime.settings, staged.path, staged.type.kind, ingest.depth(ctx.session, artifact))
    try:
        artifact = documents.get_artifact(ctx, artifact_id)
        previous = {"storage_key": artifact.storage_key, "sha256": artifact.sha256, "size": artifact.size}
        artifact.storage_key, artifact.sha256, artifact.size = key, staged.sha256, staged.size
        artifact.media_type, artifact.kind = staged.type.media_type, staged.type.kind
        artifact.version += 1
        artifact.meta = {**(artifact.meta or {}), "restored_from_backup": {**previous, "at": utcnow().isoformat()}}
        _, replaced = ingest.write_tree(ctx.session, runtime.storage.artifacts, artifact, tree)
    finally:
        ingest.cleanup_tree(tree)
    ctx.session.flush()
    enqueue_after_commit(ctx.session, delete_stored_files, [previous["storage_key"], *replaced])
    return artifact


def _record_reingest(ctx: ProjectContext, key: str, entry: str, artifact: Artifact, mode: str) -> None:
    ctx.audit("backup.reingest", "document", artifact.id, backup_key=key, entry=entry, mode=mode,
              name=artifact.name, version=artifact.version)
    ctx.session.add(RestoreActivity(org_id=ctx.org_id, project_id=ctx.project_id, kind="reingest", backup_key=key,
                                    entry=entry, artifact_id=artifact.id, artifact_name=artifact.name, mode=mode,
                                    actor_id=ctx.user_id, actor_label=ctx.identity.label,
                                    details={"status": artifact.status, "version": artifact.version},
                                    created_at=utcnow()))
    ctx.session.flush()


def restore_activity(session: Session, scope: ProjectScope, limit: int = 50) -> list[RestoreActivityRead]:
    """What was restored in a project, newest first."""
    rows = session.scalars(select(RestoreActivity).where(RestoreActivity.project_id == scope.project_id)
                           .order_by(RestoreActivity.created_at.desc(), RestoreActivity.id).limit(limit))
    return [RestoreActivityRead(id=r.id, kind=r.kind, backup_key=r.backup_key, entry=r.entry,
                                artifact_id=r.artifact_id, artifact_name=r.artifact_name,
                                target_project_id=r.target_project_id, mode=r.mode, actor_label=r.actor_label,
                                created_at=r.created_at, link=activity_link(r)) for r in rows]


def activity_link(row: RestoreActivity) -> str | None:
    """Where a restore activity row leads: the document, or the restored project."""
    if row.artifact_id is not None:
        return document_link(row.project_id, row.artifact_id)
    if row.target_project_id is not None:
        return project_link(row.target_project_id)
    return None


def restored_between(session: Session, scope: ProjectScope, start: Any, end: Any) -> list[RestoreActivityRead]:
    """Restore activity in a period (for the weekly digest's restores section)."""
    return [r for r in restore_activity(session, scope, limit=500) if start <= r.created_at < end]


