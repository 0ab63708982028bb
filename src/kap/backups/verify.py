"""`kap backup verify KEY`: read a backup end to end through every check."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from kap.backups import archive
from kap.backups.restore import known_revisions
from kap.core.errors import KapError
from kap.core.settings import Settings
from kap.core.storage import build_storage


def verify_backup(settings: Settings, key: str) -> tuple[bool, list[str]]:
    """Verify a stored backup (or a local backup file); return success and report lines."""
    try:
        with ExitStack() as stack:
            reader = _open(settings, key, stack)
            counts = reader.verify()
            manifest = reader.manifest
            if key.startswith("backups/"):  # a stored key names the org and project it must hold
                _, org_id, project_id, _ = key.split("/", 3)
                archive.check_owner(manifest, org_id, project_id)
            unknown = sorted(set(manifest.get("schema_revisions") or []) - known_revisions())
            lines = [f"backup {key}: intact",
                     f"  project {manifest.get('project_id')} ({manifest.get('project_name')}) "
                     f"of org {manifest.get('org_id')}",
                     f"  written {manifest.get('created_at')} by Kap {manifest.get('kap_version')}",
                     f"  {counts['entries']} entries, {counts['bytes']} bytes, every sha256 matches the manifest",
                     "  rows: " + ", ".join(f"{t}={n}" for t, n in sorted((manifest.get('row_counts') or {}).items()))]
            if unknown:
                lines.append(f"  note: written by a newer schema ({', '.join(unknown)}); restore needs a newer Kap")
            return True, lines
    except KapError as exc:
        return False, [f"backup {key} is NOT intact: {exc.message} ({exc.code})"]


def _open(settings: Settings, key: str, stack: ExitStack) -> archive.BackupReader:
    path = Path(key)
    if not key.startswith("backups/") and path.is_file():
        handle = stack.enter_context(path.open("rb"))
        reader = archive.BackupReader(handle)
        stack.callback(reader.close)
        return reader
    storage = build_storage(settings).backups
    spool = settings.kap_data_dir.resolve() / "tmp"
    return stack.enter_context(archive.open_backup(storage, key, spool))
