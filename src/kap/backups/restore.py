"""Restoring a whole project from a backup: verified first, then all or nothing.

Every data entry is read and its sha256 checked before the database is touched;
files are copied into storage (each hashed against the manifest as it streams)
before the rows are written in one transaction; if anything fails the transaction
rolls back and the copied files are removed.

Ids are remapped generically when the target is a new project: every primary key
gets a new id derived from the old one, and every foreign key, every id-typed
column and every id string inside a JSON document that names a restored row
follows it. `project_id` and `org_id` become the target's. Values unique on their
own (tokens, token hashes) get fresh random values, so links sent for the original
project never open the copy.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import IO, Any

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.orm import Session

from kap.backups import tables
from kap.backups.archive import BackupInvalid, BackupReader, check_owner
from kap.backups.models import RestoreActivity
from kap.backups.writer import Actor
from kap.core.audit import record_audit
from kap.core.db import utcnow
from kap.core.errors import Conflict
from kap.core.jobs import enqueue_after_commit
from kap.core.migrate import alembic_config
from kap.core.models import Project, ProjectMember
from kap.core.runtime import Runtime
from kap.core.storage import CHUNK, Storage
from kap.documents.ingest import storage_key

INSERT_BATCH = 500
_KEEP_REFS = {"orgs", "projects"}


@lru_cache(maxsize=1)
def known_revisions() -> frozenset[str]:
    """Every migration revision this code knows."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return frozenset(s.revision for s in script.walk_revisions())


def check_manifest(manifest: dict[str, Any], org_id: uuid.UUID, project_id: uuid.UUID) -> None:
    """Refuse a backup of another project, or one written by a newer schema."""
    check_owner(manifest, org_id, project_id)
    revisions = manifest.get("schema_revisions")
    if not isinstance(revisions, list) or not all(isinstance(r, str) for r in revisions):
        raise BackupInvalid("the manifest names no schema revision")
    unknown = sorted(set(revisions) - known_revisions())
    if unknown:
        raise Conflict(f"this backup was written by a newer Kap schema ({', '.join(unknown)}); upgrade Kap "
                       "before restoring it", code="backup_newer_schema")
    if not isinstance(manifest.get("row_counts"), dict) or not isinstance(manifest.get("artifacts"), dict):
        raise BackupInvalid("the manifest lacks row counts or the file list")


@dataclass
class Plan:
    """Where rows go and how their ids change."""

    org_id: uuid.UUID
    source_project: uuid.UUID
    target_project: uuid.UUID
    remap: bool
    nonce: uuid.UUID = field(default_factory=uuid.uuid4)
    restored: set[bytes] = field(default_factory=set)
    dropped: set[bytes] = field(default_factory=set)
    missing_refs: dict[str, set[bytes]] = field(default_factory=dict)
    storage_keys: dict[uuid.UUID, str] = field(default_factory=dict)

    def new_id(self, old: uuid.UUID) -> uuid.UUID:
        return uuid.uuid5(self.nonce, old.hex) if self.remap else old


@dataclass
class Outcome:
    row_counts: dict[str, int]
    skipped: dict[str, int]
    files: int
    reindex: list[uuid.UUID]
    removed_keys: list[str]


def _restorable(reader: BackupReader) -> list[Table]:
    present = reader.manifest["row_counts"]
    return [t for t in tables.backup_tables() if t.name in present and f"data/{t.name}.jsonl" in reader.infos]


def _rows(reader: BackupReader, table: Table) -> Iterator[dict[str, Any]]:
    for line in reader.lines(f"data/{table.name}.jsonl"):
        try:
            row = json.loads(line)
        except ValueError:
            raise BackupInvalid(f"data/{table.name}.jsonl holds a line that is not JSON") from None
        if not isinstance(row, dict):
            raise BackupInvalid(f"data/{table.name}.jsonl holds a line that is not a row")
        yield row


def verify_and_index(session: Session, reader: BackupReader, plan: Plan) -> None:
    """Pass one: check every data entry's sha256 and learn which ids the backup holds."""
    external: dict[str, set[uuid.UUID]] = defaultdict(set)
    for table in _restorable(reader):
        pk = tables.primary_key(table)
        refs = _external_refs(table)
        for row in _rows(reader, table):
            try:
                plan.restored.add(uuid.UUID(str(row[pk])).bytes)
                for column, target in refs.items():
                    if row.get(column):
                        external[target].add(uuid.UUID(str(row[column])))
            except (KeyError, ValueError):
                raise BackupInvalid(f"a row of {table.name} has a malformed id") from None
    for target, ids in external.items():
        plan.missing_refs[target] = {i.bytes for i in ids} - _existing(session, target, ids)


def _external_refs(table: Table) -> dict[str, str]:
    """FK columns pointing outside the backup (users and the like), by target table."""
    restored = {t.name for t in tables.backup_tables()}
    out = {}
    for column in table.c:
        for fk in column.foreign_keys:
            target = fk.column.table.name
            if target not in restored and target not in _KEEP_REFS:
                out[column.name] = target
    return out


def _existing(session: Session, table_name: str, ids: set[uuid.UUID]) -> set[bytes]:
    table = tables.Base.metadata.tables[table_name]
    pk = table.c[tables.primary_key(table)]
    found: set[bytes] = set()
    ordered = sorted(ids)
    for start in range(0, len(ordered), 500):
        found |= {v.bytes for v in session.scalars(select(pk).where(pk.in_(ordered[start:start + 500])))}
    return found


class _EntryStream:
    """A readable stream over a verified entry (the sha256 is checked when it ends)."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._rest = b""

    def read(self, size: int = -1) -> bytes:
        want = CHUNK if size is None or size < 0 else size
        while len(self._rest) < want:
            piece = next(self._pieces, None)
            if piece is None:
                break
            self._rest += piece
        out, self._rest = self._rest[:want], self._rest[want:]
        return out


def entry_stream(reader: BackupReader, name: str) -> IO[bytes]:
    """A file-like reader over one entry of a backup."""
    return _EntryStream(reader.chunks(name))  # type: ignore[return-value]


def copy_files(reader: BackupReader, storage: Storage, plan: Plan, taken: set[str]) -> list[str]:
    """Copy every document file into storage under the target's keys; return the keys written."""
    written: list[str] = []
    try:
        for raw_id, record in reader.manifest["artifacts"].items():
            old = uuid.UUID(str(raw_id))
            entry = str(record.get("entry", "")) if isinstance(record, dict) else ""
            if entry not in reader.infos or not entry.startswith("artifacts/"):
                raise BackupInvalid(f"the file of document {old} is not in the backup")
            key = _free_key(storage, plan, plan.new_id(old), taken)
            storage.put(key, entry_stream(reader, entry))
            written.append(key)
            taken.add(key)
            plan.storage_keys[old] = key
    except BaseException:
        remove_keys(storage, written)
        raise
    return written


def _free_key(storage: Storage, plan: Plan, artifact_id: uuid.UUID, taken: set[str]) -> str:
    n = 1
    while True:
        key = storage_key(plan.org_id, plan.target_project, artifact_id, n)
        if key not in taken and not storage.exists(key):
            return key
        n += 1


def remove_keys(storage: Storage, keys: list[str]) -> None:
    """Delete stored files, best effort (used to undo a failed restore)."""
    for key in keys:
        try:
            storage.delete(key)
        except Exception:  # noqa: S110  the original error matters more than a leftover file
            pass


def clear_project(session: Session, project_id: uuid.UUID) -> list[str]:
    """Delete a project's backed-up rows (children first); return its documents' storage keys."""
    artifacts = tables.Base.metadata.tables.get("artifacts")
    keys: list[str] = []
    if artifacts is not None:
        keys = list(session.scalars(select(artifacts.c.storage_key).where(artifacts.c.project_id == project_id)))
    for table in reversed(tables.backup_tables()):
        self_fk = [c for c in table.c if any(fk.column.table is table for fk in c.foreign_keys)]
        if self_fk:  # break links inside the table first, so deleting in any order is allowed
            session.execute(table.update().where(table.c.project_id == project_id)
                            .values({c.name: None for c in self_fk if c.nullable}))
        session.execute(delete(table).where(table.c.project_id == project_id))
    return keys


def insert_rows(session: Session, reader: BackupReader, plan: Plan) -> tuple[dict[str, int], dict[str, int]]:
    """Pass two: write every table's rows, remapped, in dependency order."""
    counts: dict[str, int] = {}
    skipped: dict[str, int] = {}
    columns_of = reader.manifest.get("columns") or {}
    for table in _restorable(reader):
        names = [c.name for c in table.c if c.name in set(columns_of.get(table.name) or [c.name for c in table.c])]
        rows: Iterator[dict[str, Any]] = _rows(reader, table)
        if _self_referencing(table):
            rows = iter(_parents_first(table, list(rows)))
        batch: list[dict[str, Any]] = []
        counts[table.name] = skipped[table.name] = 0
        for row in rows:
            values = _transform(table, names, row, plan)
            if values is None:
                skipped[table.name] += 1
                continue
            batch.append(values)
            counts[table.name] += 1
            if len(batch) >= INSERT_BATCH:
                session.execute(insert(table), batch)
                batch = []
        if batch:
            session.execute(insert(table), batch)
    return counts, skipped


def _self_referencing(table: Table) -> bool:
    return any(fk.column.table is table for c in table.c for fk in c.foreign_keys)


def _parents_first(table: Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    pk = tables.primary_key(table)
    links = [c.name for c in table.c if any(fk.column.table is table for fk in c.foreign_keys)]
    pending, placed, ordered = rows, set(), []
    while pending:
        ready = [r for r in pending if all(not r.get(c) or r[c] in placed or r[c] == r[pk] for c in links)]
        if not ready:  # a cycle or a parent outside the backup: let the remaining rows go as they are
            ordered += pending
            break
        placed |= {r[pk] for r in ready}
        ordered += ready
        pending = [r for r in pending if r[pk] not in placed]
    return ordered


def _transform(table: Table, names: list[str], row: dict[str, Any], plan: Plan) -> dict[str, Any] | None:
    pk = tables.primary_key(table)
    try:
        values = {name: tables.decode(table.c[name].type, row.get(name)) for name in names}
    except (ValueError, TypeError):
        raise BackupInvalid(f"a row of {table.name} holds a value its column cannot take") from None
    old_pk = values[pk]
    if not _follow_refs(table, values, plan):
        plan.dropped.add(old_pk.bytes)
        return None
    values[pk] = plan.new_id(old_pk)
    values["project_id"] = plan.target_project
    if "org_id" in values:
        values["org_id"] = plan.org_id
    _remap_loose_ids(table, values, plan)
    if plan.remap:
        for name in tables.unique_value_columns(table):
            if isinstance(values.get(name), str):
                values[name] = secrets.token_hex(max(8, min(len(values[name]), 64) // 2))
    if table.name == "artifacts" and old_pk in plan.storage_keys:
        values["storage_key"] = plan.storage_keys[old_pk]
    return values


def _follow_refs(table: Table, values: dict[str, Any], plan: Plan) -> bool:
    """Point foreign keys at the restored rows; a lost reference drops the row (CASCADE, NOT NULL) or is nulled."""
    for column in table.c:
        value = values.get(column.name)
        if value is None or not column.foreign_keys or column.name in ("project_id", "org_id"):
            continue
        fk = next(iter(column.foreign_keys))
        target = fk.column.table.name
        gone = value.bytes in plan.dropped or value.bytes in plan.missing_refs.get(target, set())
        if target == "projects":
            values[column.name] = plan.target_project if value == plan.source_project else value
        elif target == "orgs":
            values[column.name] = plan.org_id
        elif gone or (target not in plan.missing_refs and value.bytes not in plan.restored):
            if not column.nullable or (fk.ondelete or "").upper() == "CASCADE":
                return False  # what the database would have done had the row still been there
            values[column.name] = None
        elif value.bytes in plan.restored:
            values[column.name] = plan.new_id(value)
    return True


def _remap_loose_ids(table: Table, values: dict[str, Any], plan: Plan) -> None:
    if not plan.remap:
        return
    for name in tables.uuid_columns(table):
        value = values.get(name)
        if value is not None and not table.c[name].foreign_keys and name != tables.primary_key(table) \
                and value.bytes in plan.restored:
            values[name] = plan.new_id(value)
    for name in tables.json_columns(table):
        if values.get(name) is not None:
            values[name] = _remap_json(values[name], plan)


def _remap_json(value: Any, plan: Plan) -> Any:
    if isinstance(value, dict):
        return {k: _remap_json(v, plan) for k, v in value.items()}
    if isinstance(value, list):
        return [_remap_json(v, plan) for v in value]
    if isinstance(value, str) and len(value) in (32, 36):
        try:
            found = uuid.UUID(value)
        except ValueError:
            return value
        if found.bytes in plan.restored:
            new = plan.new_id(found)
            return new.hex if len(value) == 32 else str(new)
    return value


def restore(runtime: Runtime, reader: BackupReader, *, org_id: uuid.UUID, project_id: uuid.UUID,
            project_name: str, target: str, key: str, actor: Actor) -> tuple[uuid.UUID, Outcome]:
    """Restore a verified backup into a new project or over the same one, all or nothing."""
    check_manifest(reader.manifest, org_id, project_id)
    target_id = uuid.uuid4() if target == "new" else project_id
    plan = Plan(org_id=org_id, source_project=project_id, target_project=target_id, remap=target == "new")
    storage = runtime.storage.artifacts
    with runtime.db.service_session() as session:
        verify_and_index(session, reader, plan)
        session.rollback()
        taken = set(_current_keys(session, project_id)) if target == "replace" else set()
        session.rollback()
        copied = copy_files(reader, storage, plan, taken)
        try:
            with session.begin():
                outcome = _write(session, reader, plan, target=target, project_name=project_name, key=key,
                                 actor=actor, copied=copied)
        except BaseException:
            remove_keys(storage, copied)
            raise
    return target_id, outcome


def _current_keys(session: Session, project_id: uuid.UUID) -> list[str]:
    artifacts = tables.Base.metadata.tables.get("artifacts")
    if artifacts is None:
        return []
    return list(session.scalars(select(artifacts.c.storage_key).where(artifacts.c.project_id == project_id)))


def _write(session: Session, reader: BackupReader, plan: Plan, *, target: str, project_name: str, key: str,
           actor: Actor, copied: list[str]) -> Outcome:
    removed: list[str] = []
    if target == "new":
        name = f"{project_name} (restored {utcnow():%Y-%m-%d})"[:200]
        session.add(Project(id=plan.target_project, org_id=plan.org_id, name=name, created_by=actor.user_id))
        session.flush()
    else:
        removed = [k for k in clear_project(session, plan.target_project) if k not in copied]
    counts, skipped = insert_rows(session, reader, plan)
    if actor.user_id is not None:
        _keep_restorer(session, plan, actor.user_id)
    reindex = _needs_extraction(session, plan.target_project)
    _record(session, plan, target=target, key=key, actor=actor, counts=counts, files=len(copied))
    session.flush()
    _after_commit(session, reindex, removed)
    return Outcome(counts, skipped, len(copied), reindex, removed)


def _keep_restorer(session: Session, plan: Plan, user_id: uuid.UUID) -> None:
    """The person who restored a project can open the copy (as its owner) even if the backup predates them."""
    member = session.scalar(select(ProjectMember).where(ProjectMember.project_id == plan.target_project,
                                                        ProjectMember.user_id == user_id))
    if member is None:
        session.add(ProjectMember(org_id=plan.org_id, project_id=plan.target_project, user_id=user_id, role="owner"))


def _needs_extraction(session: Session, project_id: uuid.UUID) -> list[uuid.UUID]:
    """Documents the backup caught before their text was extracted: they are queued again."""
    artifacts = tables.Base.metadata.tables.get("artifacts")
    if artifacts is None:
        return []
    return list(session.scalars(select(artifacts.c.id).where(artifacts.c.project_id == project_id,
                                                             artifacts.c.status.in_(("queued", "processing")))))


def _after_commit(session: Session, reindex: list[uuid.UUID], removed: list[str]) -> None:
    from kap.documents.jobs import delete_stored_files, ingest_artifact

    if reindex:
        artifacts = tables.Base.metadata.tables["artifacts"]
        session.execute(artifacts.update().where(artifacts.c.id.in_(reindex)).values(status="queued"))
    for artifact_id in reindex:
        enqueue_after_commit(session, ingest_artifact, str(artifact_id))
    if removed:
        enqueue_after_commit(session, delete_stored_files, removed)


def _record(session: Session, plan: Plan, *, target: str, key: str, actor: Actor, counts: dict[str, int],
            files: int) -> None:
    details = {"target": target, "backup_key": key, "rows": counts, "files": files,
               "target_project_id": str(plan.target_project)}
    projects = {plan.source_project, plan.target_project}
    for project_id in projects:
        record_audit(session, org_id=plan.org_id, project_id=project_id, actor_id=actor.user_id,
                     actor_label=actor.label, action="backup.restored", target_type="project",
                     target_id=str(plan.target_project), details=details, ip=actor.ip, user_agent=actor.user_agent)
    session.add(RestoreActivity(org_id=plan.org_id, project_id=plan.source_project, kind="restore", backup_key=key,
                                target_project_id=plan.target_project, mode=target, actor_id=actor.user_id,
                                actor_label=actor.label, details={"rows": counts, "files": files},
                                created_at=utcnow()))
