"""kill -9 during an async ingest, a sync upload and a backup: after a restart nothing is stuck or left over."""

from __future__ import annotations

import io
import random
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from kap.core.db import Database
from kap.documents.models import Artifact
from tests.robustness.conftest import LiveServer

pytestmark = pytest.mark.slow
FINAL = ("ready", "needs_ocr", "failed")
WORDS = "implementation cutover payroll ledger migration workday sponsor integration conversion".split()
CONTENT_TYPES = ('<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/'
                 '2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-'
                 'package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
                 '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-'
                 'officedocument.wordprocessingml.document.main+xml"/></Types>')
RELS = ('<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
        '2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships/officeDocument" Target="word/document.xml"/></Relationships>')


def large_docx(seed: int, paragraphs: int = 6_000) -> bytes:
    """A DOCX whose extraction takes a while: many paragraphs of project prose."""
    rnd = random.Random(seed)
    body = "".join(f"<w:p><w:r><w:t>{' '.join(rnd.choice(WORDS) for _ in range(20))} {seed}-{i}</w:t></w:r></w:p>"
                   for i in range(paragraphs))
    document = ('<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/'
                f'wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>')
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("_rels/.rels", RELS)
        archive.writestr("word/document.xml", document)
    return out.getvalue()


def wait_for(predicate: Callable[[], Any], seconds: float, every: float = 0.05) -> Any:
    deadline = time.monotonic() + seconds
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(every)
        value = predicate()
    return value


def survivors(data_dir: Path) -> list[int]:
    """Processes still running with this server's data folder in their environment."""
    marker = f"KAP_DATA_DIR={data_dir}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                state = (proc / "stat").read_text().rsplit(")", 1)[-1].split()[0]
                if state != "Z":
                    found.append(int(proc.name))
        except OSError:
            continue
    return found


def crash(server: LiveServer) -> list[int]:
    """kill -9 the server and return what outlived it after ten seconds."""
    server.kill()
    return list(wait_for(lambda: not survivors(server.data_dir), 10) and [] or survivors(server.data_dir))


def stray_files(server: LiveServer, db: Database) -> list[str]:
    """Stored document files no row points at, work folders and partial uploads."""
    storage = server.data_dir / "storage"
    with db.service_session() as session:
        known = set(session.scalars(select(Artifact.storage_key)))
    stored = [p for p in (storage / "artifacts").rglob("*") if p.is_file()] if (storage / "artifacts").exists() else []
    strays = [str(p) for p in stored if p.relative_to(storage / "artifacts").as_posix() not in known]
    strays += [str(p) for p in storage.rglob(".upload-*")]
    tmp = server.data_dir / "tmp"
    strays += [str(p) for p in tmp.iterdir()] if tmp.exists() else []
    return strays


def in_background(call: Callable[[], Any]) -> threading.Thread:
    def run() -> None:
        try:
            call()
        except httpx.HTTPError:
            pass  # the server died under the request, as intended
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_kill_9_mid_work_leaves_nothing_stuck(live_server: LiveServer, db: Database) -> None:
    # The grace protects uploads in progress on other processes; shortened so the test need not wait 15 minutes.
    live_server.env["KAP_RECOVERY_GRACE_SEC"] = "3"
    server = live_server.start()
    owner = {"X-Dev-User": str(uuid.uuid4()), "X-Dev-Org": str(uuid.uuid4()), "X-Dev-Role": "owner"}
    api = httpx.Client(base_url=server.url, headers=owner, timeout=30)
    project = api.post("/api/projects", json={"name": "Crash rehearsal"}).json()["id"]
    params = {"project_id": project}
    figures: dict[str, float] = {}

    # 1. async ingest, killed while its document is processing
    queued = api.post("/api/ingest", params=params, files={"file": ("Big 1.docx", large_docx(1))})
    assert queued.status_code == 202, queued.text
    doc_id = queued.json()["document"]["id"]

    def status() -> str:
        return str(api.get(f"/api/documents/{doc_id}", params=params).json()["status"])

    assert wait_for(lambda: status() == "processing", 60), status()
    assert crash(server) == []
    started = time.monotonic()
    server.start()
    assert wait_for(lambda: status() in FINAL, 60, every=0.5), status()
    figures["async_ingest_final_s"] = time.monotonic() - started
    assert status() == "ready"

    # 2. sync upload, killed after its file was stored and while it is extracted
    artifacts = server.data_dir / "storage" / "artifacts"
    before = {p for p in artifacts.rglob("*") if p.is_file()}
    in_background(lambda: api.post("/api/ingest-sync", params=params,
                                   files={"file": ("Big 2.docx", large_docx(2))}))
    assert wait_for(lambda: {p for p in artifacts.rglob("*") if p.is_file()} - before, 60)
    time.sleep(0.3)
    assert crash(server) == []
    assert stray_files(server, db), "the kill left nothing to recover; the test did not test"
    started = time.monotonic()
    server.start()
    assert wait_for(lambda: not stray_files(server, db), 75, every=0.5), stray_files(server, db)
    figures["sync_upload_swept_s"] = time.monotonic() - started

    # 3. backup, killed while the ZIP is being written
    backups = server.data_dir / "storage" / "backups"
    caught = False
    for _ in range(8):
        running = in_background(lambda: api.post("/api/backups/run", params=params))

        def partial_or_done(thread: threading.Thread = running) -> bool:
            return bool(list(backups.rglob(".upload-*"))) or not thread.is_alive()

        wait_for(partial_or_done, 60, every=0.002)
        caught = bool(list(backups.rglob(".upload-*")))
        if caught:
            break
        running.join()
    assert caught, "no backup was caught mid-write"
    assert crash(server) == []
    started = time.monotonic()
    server.start()
    assert wait_for(lambda: not stray_files(server, db), 75, every=0.5), stray_files(server, db)
    figures["backup_swept_s"] = time.monotonic() - started

    listed = api.get("/api/documents", params=params).json()["documents"]
    assert listed, listed
    assert all(d["status"] in FINAL for d in listed), listed
    print("\ncrash recovery:", {k: round(v, 1) for k, v in figures.items()})  # noqa: T201
