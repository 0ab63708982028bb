"""Backups: throughput of a streamed project backup against `zipfile` writing the same files, peak memory, restore.

The project holds BENCH_BACKUP_MB (default 1024) of documents: half incompressible (like
PDF scans and Office files), half text. The baseline writes the same stored files with
`zipfile` straight to a local file, deflating the same ones, without a database or storage.
"""

from __future__ import annotations

import hashlib
import os
import resource
import tempfile
import threading
import time
import tracemalloc
import uuid
import zipfile
from pathlib import Path

from bench.common import out, sqlite_url
from kap.backups import archive
from kap.backups.restore import restore
from kap.backups.writer import Actor, backup_project
from kap.core.migrate import migrate
from kap.core.models import Org, Project
from kap.core.runtime import Runtime
from kap.core.settings import load_settings
from kap.core.storage import CHUNK
from kap.documents.ingest import storage_key
from kap.documents.models import Artifact

FILE_MB = 16
TEXT = b"Cutover weekend starts Friday; the legacy HR system becomes read-only at 18:00. " * 64


def _make_project(runtime: Runtime, total_mb: int) -> tuple[uuid.UUID, uuid.UUID, list[str]]:
    org_id, project_id = uuid.uuid4(), uuid.uuid4()
    keys = []
    with runtime.db.service_transaction() as s:
        s.add(Org(id=org_id, name="Bench"))
        s.flush()
        s.add(Project(id=project_id, org_id=org_id, name="Bench"))
        s.flush()
        for i in range(max(1, total_mb // FILE_MB)):
            artifact_id = uuid.uuid4()
            key = storage_key(org_id, project_id, artifact_id)
            digest, size = _write_file(runtime, key, compressible=i % 2 == 1)
            s.add(Artifact(id=artifact_id, org_id=org_id, project_id=project_id, name=f"file-{i}.bin",
                           media_type="application/octet-stream", kind="text", size=size, sha256=digest,
                           storage_key=key, status="ready", ocr_pages=[], meta={}))
            keys.append(key)
    return org_id, project_id, keys


def _write_file(runtime: Runtime, key: str, *, compressible: bool) -> tuple[str, int]:
    path = runtime.storage.artifacts._path(key)  # type: ignore[attr-defined]  # the local backend's file
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        for _ in range(FILE_MB):
            piece = (TEXT * (CHUNK // len(TEXT) + 1))[:CHUNK] if compressible else os.urandom(CHUNK)
            digest.update(piece)
            handle.write(piece)
    return digest.hexdigest(), FILE_MB * CHUNK




def _baseline_matched(runtime: Runtime, keys: list[str], target: Path) -> float:
    start = time.perf_counter()
    with zipfile.ZipFile(target, "w") as zf:
        for key in keys:
            with runtime.storage.artifacts.open(key) as source:
                head = source.read(256 * 1024)
                info = zipfile.ZipInfo(key.replace("/", "_"))
                info.compress_type = zipfile.ZIP_DEFLATED if archive.worth_compressing(head) else zipfile.ZIP_STORED
                with zf.open(info, "w", force_zip64=True) as entry:
                    entry.write(head)
                    while piece := source.read(CHUNK):
                        entry.write(piece)
    return time.perf_counter() - start


class _PeakRss:
    """Samples the process's resident memory while a block runs."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()

    def _rss(self) -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * resource.getpagesize()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.02)

    def __enter__(self) -> _PeakRss:
        self.base = self._rss()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    total_mb = int(os.environ.get("BENCH_BACKUP_MB", "1024"))
    with tempfile.TemporaryDirectory(prefix="kap-bench-backups-") as folder, sqlite_url(Path(folder)) as url:
        settings = load_settings(kap_database_url=url, kap_data_dir=Path(folder) / "data", kap_env="test")
        migrate(settings)
        runtime = Runtime.build(settings)
        org_id, project_id, keys = _make_project(runtime, total_mb)
        mb = len(keys) * FILE_MB
        out(f"project: {len(keys)} files, {mb} MB (half incompressible, half text), SQLite, local storage")

        base = _baseline_matched(runtime, keys, Path(folder) / "baseline.zip")
        out(f"zipfile direct to a local file:   {base:6.2f} s  {mb / base:7.1f} MB/s")

        with _PeakRss() as rss:
            start = time.perf_counter()
            written = backup_project(runtime, project_id, actor=Actor(label="bench"))
            took = time.perf_counter() - start
        out(f"kap backup (streamed to storage): {took:6.2f} s  {mb / took:7.1f} MB/s  "
            f"ratio {base / took:.2f} of zipfile  ({written.size / 2**20:.0f} MB stored)")
        out(f"  resident memory: {rss.base / 2**20:.0f} MB before, peak {rss.peak / 2**20:.0f} MB "
            f"(+{(rss.peak - rss.base) / 2**20:.0f} MB for {mb} MB of files)")

        tracemalloc.start()
        backup_project(runtime, project_id, actor=Actor(label="bench"))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out(f"  Python heap peak during a backup (tracemalloc): {peak / 2**20:.1f} MB")

        with archive.open_backup(runtime.storage.backups, written.key, Path(folder) / "tmp") as reader:
            start = time.perf_counter()
            verified = reader.verify()
            took = time.perf_counter() - start
            out(f"verify (sha256 of every entry):   {took:6.2f} s  {verified['bytes'] / 2**20 / took:7.1f} MB/s")
            with _PeakRss() as rss:
                start = time.perf_counter()
                new_id, outcome = restore(runtime, reader, org_id=org_id, project_id=project_id, project_name="Bench",
                                          target="new", key=written.key, actor=Actor(label="bench"))
                took = time.perf_counter() - start
        out(f"restore into a new project:       {took:6.2f} s  {mb / took:7.1f} MB/s  "
            f"({outcome.files} files, {sum(outcome.row_counts.values())} rows; "
            f"peak resident +{(rss.peak - rss.base) / 2**20:.0f} MB)")
        runtime.close()


if __name__ == "__main__":
    main()
