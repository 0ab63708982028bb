"""Through a real `kap serve` on loopback, each figure beside its bare engine measured in the same run.

    python -m bench http                       # SQLite and PostgreSQL (RLS on), GETs and ingest
    python -m bench http -- --only get         # only the GET figures
    python -m bench http -- --rounds 7 --seconds 3

GET: an authenticated project-scoped `GET /api/projects/{id}`, a list of 50 projects and a list of
50 documents, against a bare FastAPI + uvicorn/httptools process returning the same JSON bodies,
loaded by wrk -t1 -c8 in alternating rounds (median req/s, ratio of medians).
Ingest: `POST /api/ingest-sync` of PDFs (15 pages; 100 pages; a 1-30 page mix), DOCX and XLSX,
one file at a time, against the bare extractor (pypdfium2, python-docx, openpyxl) on the same
files in the same process as the client (median pages/s over alternating rounds).
Backup: `POST /api/backups/run` of a project holding BENCH_HTTP_BACKUP_MB (default 64) of files,
half incompressible, half text, against `zipfile` writing the same stored files to a local file
(median MB/s over alternating rounds).
"""

from __future__ import annotations

import argparse
import io
import os
import random
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.bench_documents import WORDS, _pdf
from bench.common import PG_ADMIN_URL, median, out, postgres_url
from bench.server import Process, bare_serve, kap_env, kap_serve, load, load_generator, measure, migrate_and_seed


@dataclass
class Seeded:
    user: uuid.UUID
    org: uuid.UUID
    project: uuid.UUID

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Dev-User": str(self.user), "X-Dev-Org": str(self.org), "X-Dev-Role": "owner"}


def seed(env: dict[str, str], *, projects: int = 50, documents: int = 50) -> Seeded:
    """An org, a member of `projects` projects, and `documents` document rows in the first one."""
    from kap.core.db import Database
    from kap.core.models import Org, OrgMember, Project, ProjectMember, User
    from kap.core.settings import load_settings
    from kap.documents.models import Artifact

    migrate_and_seed(env)
    settings = load_settings(kap_database_url=env["KAP_DATABASE_URL"], kap_data_dir=Path(env["KAP_DATA_DIR"]))
    db = Database(settings)
    org, user = uuid.uuid4(), uuid.uuid4()
    ids = [uuid.uuid4() for _ in range(projects)]
    try:
        with db.service_transaction() as s:
            s.add(Org(id=org, name="Bench Consultancy"))
            s.add(User(id=user, email=f"{user.hex[:10]}@bench.test", name="Bench Lead"))
            s.flush()
            s.add(OrgMember(org_id=org, user_id=user, role="member"))
            for n, pid in enumerate(ids):
                s.add(Project(id=pid, org_id=org, name=f"Client rollout {n:02d}", created_by=user))
            s.flush()
            for pid in ids:
                s.add(ProjectMember(org_id=org, project_id=pid, user_id=user, role="owner"))
            for n in range(documents):
                aid = uuid.uuid4()
                s.add(Artifact(id=aid, org_id=org, project_id=ids[0], name=f"Status report {n:02d}.pdf",
                               media_type="application/pdf", kind="pdf", size=1000 + n, sha256=uuid.uuid4().hex * 2,
                               storage_key=f"bench/{aid.hex}", status="ready", page_count=3, chunk_count=3,
                               ocr_pages=[], version=1, shareable=False, meta={}, uploaded_by=user))
    finally:
        db.dispose()
    return Seeded(user=user, org=org, project=ids[0])


def each_database(which: list[str], work: Path) -> Iterator[tuple[str, str]]:
    for label in which:
        if label == "sqlite":
            yield label, f"sqlite:///{work / f'{label}-{uuid.uuid4().hex[:6]}.db'}"
        else:
            with postgres_url(PG_ADMIN_URL) as url:
                yield label, url


# ---- GET ---------------------------------------------------------------------------------------

GETS = {
    "one": ("project GET", "/api/projects/{project}"),
    "projects": ("list 50 projects", "/api/projects"),
    "documents": ("list 50 documents", "/api/documents?project_id={project}&limit=50"),
}


def bench_get(label: str, url: str, work: Path, rounds: int, seconds: float) -> dict[str, float]:
    data = work / f"data-get-{label}"
    env = kap_env(url, data)
    seeded = seed(env)
    kap = kap_serve(env, work)
    bare: Process | None = None
    try:
        paths = {key: path.format(project=seeded.project) for key, (_, path) in GETS.items()}
        bodies = {}
        for key, path in paths.items():
            response = httpx.get(kap.base + path, headers=seeded.headers)
            response.raise_for_status()
            bodies[key] = response.json()
        assert len(bodies["projects"]["projects"]) == 50
        assert len(bodies["documents"]["documents"]) == 50
        bare = bare_serve(bodies, work)
        results: dict[str, float] = {}
        for key, path in paths.items():
            load(kap.base + path, seeded.headers, 1)  # warm-up
            load(f"{bare.base}/bare/{key}", {}, 1)
            kap_runs, bare_runs = [], []
            for _ in range(rounds):
                kap_runs.append(measure(kap, kap.base + path, seeded.headers, seconds))
                bare_runs.append(measure(bare, f"{bare.base}/bare/{key}", {}, seconds))
            k, b = median([m.rps for m in kap_runs]), median([m.rps for m in bare_runs])
            kc, bc = median([m.cpu_ms for m in kap_runs]), median([m.cpu_ms for m in bare_runs])
            results[key] = k
            out(f"[{label}] {GETS[key][0]:<18} kap {k:6.0f} req/s  bare {b:6.0f} req/s  kap/bare {k / b:.2f}"
                f"  | server CPU/request kap {kc:.2f} ms  bare {bc:.2f} ms  bare/kap {bc / kc:.2f}"
                f"  (kap rounds {_spread([m.rps for m in kap_runs])} req/s)")
        out(f"[{label}] list of 50 projects vs single GET {results['one'] / results['projects']:.2f}x slower,"
            f" 50 documents {results['one'] / results['documents']:.2f}x (goal <= 2)")
        return results
    finally:
        kap.stop()
        if bare is not None:
            bare.stop()


def _spread(values: list[float]) -> str:
    return f"{min(values):.0f}-{max(values):.0f}"


# ---- ingest ------------------------------------------------------------------------------------

def _docx(paragraphs: int, seed: int) -> bytes:
    import docx

    rng = random.Random(seed)
    document = docx.Document()
    document.add_heading(f"Kickoff minutes {seed}", level=1)
    for _ in range(paragraphs):
        document.add_paragraph(" ".join(rng.choice(WORDS) for _ in range(40)))
    table = document.add_table(rows=8, cols=4)
    for row in table.rows:
        for cell in row.cells:
            cell.text = rng.choice(WORDS)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _xlsx(sheets: int, rows: int, seed: int) -> bytes:
    import openpyxl

    rng = random.Random(seed)
    book = openpyxl.Workbook()
    book.remove(book.active)
    for n in range(sheets):
        sheet = book.create_sheet(f"RAID {n + 1}")
        sheet.append(["ID", "Type", "Title", "Owner", "Status", "Due"])
        for i in range(rows):
            sheet.append([f"R-{seed}-{n}-{i}", rng.choice(["Risk", "Issue", "Decision"]),
                          " ".join(rng.choice(WORDS) for _ in range(10)), rng.choice(WORDS), "Open", "2026-03-01"])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _bare_pdf(path: Path) -> int:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(path))
    try:
        for index in range(len(doc)):
            page = doc[index]
            textpage = page.get_textpage()
            textpage.get_text_range()
            textpage.close()
            page.close()
        return len(doc)
    finally:
        doc.close()


def _bare_docx(path: Path) -> int:
    import docx

    document = docx.Document(str(path))
    text = [p.text for p in document.paragraphs]
    for table in document.tables:
        text += [cell.text for row in table.rows for cell in row.cells]
    return 1


def _bare_xlsx(path: Path) -> int:
    import openpyxl

    book = openpyxl.load_workbook(str(path), read_only=True, data_only=True)
    try:
        sheets = 0
        for sheet in book.worksheets:
            for row in sheet.iter_rows(values_only=True):
                " ".join(str(v) for v in row if v is not None)
            sheets += 1
        return sheets
    finally:
        book.close()


@dataclass
class Workload:
    name: str
    suffix: str
    make: Callable[[int], bytes]
    bare: Callable[[Path], int]
    count: int
    unit: str = "pages"


def workloads(quick: bool) -> list[Workload]:
    mix = [1, 3, 5, 8, 12, 15, 20, 30]
    return [
        Workload("PDF 15 pages", ".pdf", lambda s: _pdf(15, s), _bare_pdf, 6 if quick else 12),
        Workload("PDF 100 pages", ".pdf", lambda s: _pdf(100, s), _bare_pdf, 2 if quick else 3),
        Workload("PDF 1-30 pages", ".pdf", lambda s: _pdf(mix[s % len(mix)], s), _bare_pdf, 8),
        Workload("DOCX", ".docx", lambda s: _docx(60, s), _bare_docx, 6, "files"),
        Workload("XLSX", ".xlsx", lambda s: _xlsx(3, 200, s), _bare_xlsx, 6, "files"),
    ]


def bench_ingest(label: str, url: str, work: Path, rounds: int, quick: bool,
                 names: list[str] | None = None) -> dict[str, float]:
    data = work / f"data-ingest-{label}"
    env = kap_env(url, data)
    seeded = seed(env, projects=1, documents=0)
    kap = kap_serve(env, work)
    results: dict[str, float] = {}
    seed_counter = iter(range(10_000_000))
    try:
        with httpx.Client(base_url=kap.base, headers=seeded.headers, timeout=120) as client:
            def upload(path: Path) -> int:
                with path.open("rb") as handle:
                    response = client.post("/api/ingest-sync", params={"project_id": str(seeded.project)},
                                           files={"file": (path.name, handle)})
                if response.status_code != 200:
                    raise RuntimeError(f"{path.name}: {response.status_code} {response.text[:300]}")
                document = response.json()["document"]
                if document["status"] != "ready":
                    raise RuntimeError(f"{path.name}: {document['status']} {document.get('status_reason')}")
                return int(document["page_count"] or 1)

            for load_ in workloads(quick):
                if names and not any(n.lower() in load_.name.lower() for n in names):
                    continue
                folder = work / f"files-{label}-{uuid.uuid4().hex[:6]}"
                folder.mkdir()

                def batch(load_: Workload = load_, folder: Path = folder) -> list[Path]:
                    paths = []
                    for _ in range(load_.count):
                        n = next(seed_counter)
                        path = folder / f"{load_.name.split()[0]} {n}{load_.suffix}"
                        path.write_bytes(load_.make(n))
                        paths.append(path)
                    return paths

                upload(batch()[0])  # warm-up: imports and the extractor pool
                kap_rates, bare_rates = [], []
                for _ in range(rounds):
                    files = batch()
                    started = time.perf_counter()
                    units = sum(upload(p) if load_.unit == "pages" else (upload(p) and 1) for p in files)
                    kap_rates.append(units / (time.perf_counter() - started))
                    started = time.perf_counter()
                    units = sum(load_.bare(p) if load_.unit == "pages" else (load_.bare(p) and 1) for p in files)
                    bare_rates.append(units / (time.perf_counter() - started))
                k, b = median(kap_rates), median(bare_rates)
                results[load_.name] = k / b
                per_file = (1 / k - 1 / b) * 1000 * (1 if load_.unit == "files" else _pages_per_file(load_))
                out(f"[{label}] ingest {load_.name:<15} kap {k:7.1f} {load_.unit}/s   bare {b:7.1f} {load_.unit}/s"
                    f"   kap/bare {k / b:.2f}   overhead {per_file:.0f} ms/file   (load {_load()})")
        return results
    finally:
        kap.stop()


# ---- backup --------------------------------------------------------------------------------------

def _stored_files(env: dict[str, str], seeded: Seeded, total_mb: int) -> tuple[Any, list[str]]:
    """Documents written straight into the project's local storage (no ingest); their storage keys."""
    from bench.bench_backups import FILE_MB, _write_file
    from kap.core.runtime import Runtime
    from kap.core.settings import load_settings
    from kap.documents.ingest import storage_key
    from kap.documents.models import Artifact

    settings = load_settings(kap_database_url=env["KAP_DATABASE_URL"], kap_data_dir=Path(env["KAP_DATA_DIR"]))
    runtime = Runtime.build(settings)
    keys = []
    with runtime.db.service_transaction() as s:
        for i in range(max(1, total_mb // FILE_MB)):
            artifact_id = uuid.uuid4()
            key = storage_key(seeded.org, seeded.project, artifact_id)
            digest, size = _write_file(runtime, key, compressible=i % 2 == 1)
            s.add(Artifact(id=artifact_id, org_id=seeded.org, project_id=seeded.project, name=f"Export {i}.bin",
                           media_type="application/octet-stream", kind="text", size=size, sha256=digest,
                           storage_key=key, status="ready", ocr_pages=[], meta={}, uploaded_by=seeded.user))
            keys.append(key)
    return runtime, keys


def bench_backup(label: str, url: str, work: Path, rounds: int) -> float:
    from bench.bench_backups import FILE_MB, _baseline_matched

    data = work / f"data-backup-{label}"
    env = kap_env(url, data)
    seeded = seed(env, projects=1, documents=0)
    runtime, keys = _stored_files(env, seeded, int(os.environ.get("BENCH_HTTP_BACKUP_MB", "64")))
    mb = len(keys) * FILE_MB
    kap = kap_serve(env, work)
    try:
        kap_rates, bare_rates = [], []
        with httpx.Client(base_url=kap.base, headers=seeded.headers, timeout=600) as client:
            for _ in range(rounds):
                started = time.perf_counter()
                response = client.post("/api/backups/run", params={"project_id": str(seeded.project)})
                if response.status_code != 200:
                    raise RuntimeError(f"backup: {response.status_code} {response.text[:300]}")
                kap_rates.append(mb / (time.perf_counter() - started))
                bare_rates.append(mb / _baseline_matched(runtime, keys, work / f"bare-{label}.zip"))
        k, b = median(kap_rates), median(bare_rates)
        out(f"[{label}] backup {mb} MB        kap {k:7.1f} MB/s   zipfile {b:7.1f} MB/s   kap/bare {k / b:.2f}")
        return k / b
    finally:
        kap.stop()
        runtime.close()


def _load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def _pages_per_file(load_: Workload) -> float:
    if "15 pages" in load_.name:
        return 15
    if "100 pages" in load_.name:
        return 100
    return sum([1, 3, 5, 8, 12, 15, 20, 30]) / 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["get", "ingest", "backup"], help="one part only")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], action="append", help="engines (default both)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer files per ingest round")
    parser.add_argument("--files", action="append", help="only the ingest workloads whose name holds this")
    args = parser.parse_args()
    engines = args.db or ["sqlite", "postgresql"]
    out(f"through a real `kap serve` ({load_generator()}), medians of {args.rounds} alternating rounds")
    with tempfile.TemporaryDirectory(prefix="kap-bench-http-") as tmp:
        work = Path(tmp)
        for label, url in each_database(engines, work):
            shown = label if label == "sqlite" else "postgresql+rls"
            if args.only in (None, "get"):
                bench_get(shown, url, work, args.rounds, args.seconds)
            if args.only in (None, "ingest"):
                bench_ingest(shown, url, work, max(3, args.rounds // 2 + 1), args.quick, args.files)
            if args.only in (None, "backup"):
                bench_backup(shown, url, work, 3)


if __name__ == "__main__":
    main()

