"""Documents benchmark: ingest throughput (Kap vs the bare extractor) and search latency.

    .venv/bin/python -m bench.bench_documents                  # SQLite, ~1-2 minutes
    .venv/bin/python -m bench.bench_documents --postgres URL   # also PostgreSQL (a scratch database is created)
    .venv/bin/python -m bench.bench_documents --big            # 100k chunks in the project, 1M in the database
    .venv/bin/python -m bench.bench_documents --upload-mb 200  # peak server memory while uploading a big file
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import postgres_url, sqlite_url
from kap.qa.samples import pdf_file

WORDS = ("payroll benefits absence compensation integration conversion workday kronos cutover sponsor "
         "steering decision risk issue mitigation owner deadline testing cycle defect severity budget "
         "contract vendor approval design build deploy hypercare training security report interface "
         "worker position organization location tax deduction garnishment retro accrual calendar").split()


SYLLABLES = "ka lo mi ne su ta ri po de fa gu hi jo ve ze".split()
VOCABULARY = sorted({a + b + c for a in SYLLABLES for b in SYLLABLES for c in SYLLABLES} | set(WORDS))
ZIPF = [1 / (rank + 1) for rank in range(len(VOCABULARY))]


def out(line: str) -> None:
    """Print one result line."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _chunk_text(rng: random.Random, words: int = 120) -> str:
    """Synthetic text with a Zipf word distribution, like real prose."""
    return " ".join(rng.choices(VOCABULARY, weights=ZIPF, k=words))


def _pdf(pages: int, seed: int) -> bytes:
    """A text PDF with `pages` pages of sentences (Helvetica, one content stream per page)."""
    rng = random.Random(seed)
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b"",
                            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for _ in range(pages):
        lines = [" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(40)]
        ops = "BT /F1 10 Tf 40 780 Td 14 TL " + " ".join(f"({line}) '" for line in lines) + " ET"
        stream = ops.encode()
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        content_no = len(objects)
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                       b"/Resources << /Font << /F1 3 0 R >> >> >>" % content_no)
        kids.append(len(objects))
    objects[1] = b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % k for k in kids) + b"] /Count %d >>" % pages
    return pdf_file(objects)


def _bare_extract(paths: list[Path]) -> int:
    import pypdfium2 as pdfium

    pages = 0
    for path in paths:
        doc = pdfium.PdfDocument(str(path))
        for index in range(len(doc)):
            page = doc[index]
            textpage = page.get_textpage()
            textpage.get_text_range()
            textpage.close()
            page.close()
            pages += 1
        doc.close()
    return pages


class Harness:
    """A Kap app on a scratch database with one org, project and lead."""

    def __init__(self, database_url: str, data_dir: Path) -> None:
        from fastapi.testclient import TestClient

        from kap.app import create_app
        from kap.core.migrate import migrate
        from kap.core.models import Org, OrgMember, Project, ProjectMember, User
        from kap.core.runtime import Runtime
        from kap.core.settings import load_settings

        self.settings = load_settings(kap_env="test", dev_auth=True, kap_database_url=database_url,
                                      kap_data_dir=data_dir, rate_limit_max=1_000_000, kap_max_upload_mb=1024)
        migrate(self.settings)
        self.runtime = Runtime.build(self.settings)
        self.org, self.project, self.user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        with self.runtime.db.service_transaction() as s:
            s.add(Org(id=self.org, name="Bench"))
            s.add(User(id=self.user, email=f"{self.user.hex[:10]}@bench.test"))
            s.flush()
            s.add(OrgMember(org_id=self.org, user_id=self.user, role="member"))
            s.add(Project(id=self.project, org_id=self.org, name="Bench"))
            s.flush()
            s.add(ProjectMember(org_id=self.org, project_id=self.project, user_id=self.user, role="owner"))
        self.client = TestClient(create_app(runtime=self.runtime), raise_server_exceptions=True)
        self.client.__enter__()
        self.headers = {"X-Dev-User": str(self.user), "X-Dev-Role": "owner"}

    def upload(self, path: Path) -> dict[str, Any]:
        with path.open("rb") as handle:
            response = self.client.post("/api/ingest-sync", params={"project_id": str(self.project)},
                                        headers=self.headers, files={"file": (path.name, handle, "application/pdf")})
        response.raise_for_status()
        doc: dict[str, Any] = response.json()["document"]
        return doc

    def fill_chunks(self, project_chunks: int, total_chunks: int) -> None:
        """Pad `project_chunks` more into the bench project, then other projects up to `total_chunks` in all."""
        from bench.padding import Target, pad, pad_database, zipf_source

        source = zipf_source(VOCABULARY)
        db = self.runtime.db
        pad(db, Target(self.org, self.project), project_chunks, source, seed=project_chunks)
        pad_database(db, self.org, total_chunks, source, seed=total_chunks)

    def search_latency(self, queries: list[tuple[str, str]]) -> tuple[float, float]:
        from kap.core.deps import resolve_project
        from kap.core.security import Identity
        from kap.documents.search import search_chunks

        identity = Identity(via="dev", user_id=self.user)
        timings = []
        with self.runtime.db.app_session(self.user) as session:
            ctx = resolve_project(session, identity, self.project)
            for q, match in queries:
                started = time.perf_counter()
                search_chunks(ctx, q, 10, match=match)  # type: ignore[arg-type]
                timings.append((time.perf_counter() - started) * 1000)
                session.rollback()
        timings.sort()
        return statistics.median(timings), timings[int(len(timings) * 0.95) - 1]

    def chunk_count(self) -> int:
        """How many chunks the whole database holds."""
        from sqlalchemy import func, select

        from kap.documents.models import ArtifactChunk

        with self.runtime.db.service_transaction() as s:
            return int(s.scalar(select(func.count()).select_from(ArtifactChunk)) or 0)

    def bare_latency(self, queries: list[tuple[str, str]]) -> tuple[float, float]:
        """The engine's own ranked query for the same terms (ids of the best 10, no snippet, no RLS)."""
        from kap.documents.search import FTS_RANGE, fts5_expression, query_terms

        timings = []
        with self.runtime.db.service_engine.connect() as conn:
            raw: Any = conn.connection.driver_connection
            for q, match in queries:
                terms = query_terms(q)
                started = time.perf_counter()
                if self.runtime.db.is_postgres:
                    joiner = " && " if match == "all" else " || "
                    tsq = joiner.join("phraseto_tsquery('simple', %s)" for _ in terms)
                    raw.execute(f"SELECT id FROM artifact_chunks, ({'SELECT ' + tsq}) AS q(query) "
                                "WHERE project_id = %s AND tsv @@ q.query ORDER BY ts_rank_cd(tsv, q.query) DESC "
                                "LIMIT 10", [*(t.raw for t in terms), self.project]).fetchall()
                else:
                    raw.execute(f"SELECT chunk_id FROM artifact_chunks_fts WHERE artifact_chunks_fts MATCH :q "
                                f"AND {FTS_RANGE} ORDER BY rank LIMIT 10",
                                {"q": fts5_expression(terms, match),  # type: ignore[arg-type]
                                 "project": self.project.hex}).fetchall()
                timings.append((time.perf_counter() - started) * 1000)
            raw.rollback()
        timings.sort()
        return statistics.median(timings), timings[int(len(timings) * 0.95) - 1]

    def close(self) -> None:
        self.client.__exit__(None, None, None)
        self.runtime.close()


def _queries(rng: random.Random, n: int) -> list[tuple[str, str]]:
    out = []
    for i in range(n):
        words = rng.sample(VOCABULARY[30:1500], 3)
        out.append((" ".join(words), "any" if i % 2 else "all"))
    return out


def _search_sizes(label: str, harness: Harness, big: bool) -> None:
    sizes = [(10_000, 10_000)] + ([(100_000, 1_000_000)] if big else [])
    have_project = 0
    for project_chunks, total in sizes:
        harness.fill_chunks(project_chunks - have_project, total)
        have_project = project_chunks
        queries = _queries(random.Random(3), 200)
        harness.bare_latency(queries)  # warm the caches for both: every term's index pages read once
        p50, p95 = harness.search_latency(queries)
        b50, b95 = harness.bare_latency(queries)
        load, in_db = os.getloadavg()[0], harness.chunk_count()
        out(f"[{label}] search: {project_chunks:,} chunks in the project, {in_db:,} in the database: "
            f"p50 {p50:.1f} ms, p95 {p95:.1f} ms; bare query p50 {b50:.1f} ms, p95 {b95:.1f} ms; "
            f"ratio p95 {p95 / b95:.2f}x (load {load:.2f})")


def bench_engine(label: str, database_url: str, work: Path, files: list[Path], *, big: bool,
                 search_only: bool = False) -> None:
    harness = Harness(database_url, work / f"data-{label}")
    try:
        if search_only:
            _search_sizes(label, harness, big)
            return
        harness.upload(files[0])  # warm-up (imports, caches)
        started = time.perf_counter()
        pages = sum(harness.upload(path)["page_count"] for path in files[1:])
        kap_rate = pages / (time.perf_counter() - started)
        started = time.perf_counter()
        bare_pages = _bare_extract(files[1:])
        bare_rate = bare_pages / (time.perf_counter() - started)
        out(f"[{label}] ingest: Kap via API {kap_rate:,.0f} pages/s, bare extractor {bare_rate:,.0f} pages/s, "
              f"ratio {kap_rate / bare_rate:.2f} (goal >= 0.5)")
        _search_sizes(label, harness, big)
    finally:
        harness.close()


def bench_upload_memory(work: Path, megabytes: int) -> None:
    """Run a real server process and report its peak RSS while it receives a large upload."""
    import httpx

    data_dir = work / "data-upload"
    env = {**os.environ, "KAP_DATA_DIR": str(data_dir), "DEV_AUTH": "1", "KAP_ENV": "development",
           "KAP_MAX_UPLOAD_MB": str(megabytes + 10)}
    port = 18000 + random.randint(0, 999)
    subprocess.run([sys.executable, "-m", "kap", "migrate"], env=env, check=True, capture_output=True)
    command = [sys.executable, "-m", "uvicorn", "kap.app:app_factory", "--factory", "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(base + "/healthz")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        headers = {"X-Dev-User": str(uuid.uuid4()), "X-Dev-Org": str(uuid.uuid4()), "X-Dev-Role": "owner"}
        project = httpx.post(base + "/api/projects", json={"name": "Big"}, headers=headers).json()["id"]
        before = _peak_rss_mb(server.pid)
        big = work / "big.txt"
        with big.open("wb") as sink:
            line = (" ".join(WORDS) + "\n").encode()
            for _ in range(megabytes * 1024 * 1024 // len(line)):
                sink.write(line)
        with big.open("rb") as handle:
            response = httpx.post(base + "/api/ingest", params={"project_id": project}, headers=headers,
                                  files={"file": ("big.txt", handle, "text/plain")}, timeout=600)
        out(f"[upload] {megabytes} MB upload answered {response.status_code}; server peak RSS "
              f"{before:.0f} MB before, {_peak_rss_mb(server.pid):.0f} MB after")
    finally:
        server.terminate()
        server.wait(timeout=30)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", help="PostgreSQL admin URL (a scratch database is created and dropped)")
    parser.add_argument("--big", action="store_true", help="also 100k chunks in the project, 1M in the database")
    parser.add_argument("--upload-mb", type=int, default=0, help="measure server memory while uploading N MB")
    parser.add_argument("--search-only", action="store_true", help="skip the ingest figures")
    parser.add_argument("--sqlite", action=argparse.BooleanOptionalAction, default=True, help="run on SQLite")
    parser.add_argument("--pages", type=int, default=300, help="text PDF pages to ingest")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kap-bench-") as tmp:
        work = Path(tmp)
        files = []
        for i in range(4):
            path = work / f"generated-{i}.pdf"
            path.write_bytes(_pdf(10 if i == 0 else max(1, args.pages // 3), seed=i))
            files.append(path)
        if args.sqlite:
            with sqlite_url(work) as url:
                bench_engine("sqlite", url, work, files, big=args.big, search_only=args.search_only)
        if args.postgres:
            with postgres_url(args.postgres) as url:
                bench_engine("postgresql", url, work, files, big=args.big, search_only=args.search_only)
        if args.upload_mb:
            bench_upload_memory(work, args.upload_mb)


if __name__ == "__main__":
    main()
