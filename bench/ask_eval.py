"""Ask Kap quality harness: hit rate against a bare BM25 ranker, refusals, citations, latency, no bleed.

For every corpus (a folder of documents and a question file) it loads the documents into
a fresh project, and a look-alike copy with every expected figure changed into a project
of another org (same document names). It then prints, per corpus:

- hit rate: Kap's answer holds every expected string;
- the same hit rate for a bare BM25 sentence ranker over the same extracted text (SQLite
  FTS5, stop words removed, the question's words OR-ed) returning as many sentences as Kap
  cited (at least one), side by side;
- citation precision: citations whose quote holds an expected string, over all citations;
- refusal rate on the unanswerable questions (asked in the project whose documents cannot
  answer them), and on the answerable ones;
- p50 / p95 latency of `POST /api/ask` (the whole request: auth, retrieval, answer, log), sent over
  HTTP to a real `kap serve` on loopback started on the same database and data folder (the uploads
  go through it too); `--in-process` drives the app through FastAPI's TestClient instead;
- crossings: answers or citations in one project that show the other project's facts or documents.

`--calibrate` asks every question again at several refusal thresholds and prints the
answered and refused rates side by side. `--scale N` pads the first corpus's project with
generated chunks up to N (`--total M`: other projects up to M in the database) and measures again,
beside one bare scoped full-text query per question on the same database. `--calibrate` changes the
threshold inside the app, so it runs in process.

    python -m bench.ask_eval [--db sqlite|postgresql|both] [--scale 10000 [--total 1000000]] [--in-process]
                             [--calibrate]
    python -m bench.ask_eval --corpus DIR --questions FILE
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from huey.storage import SqliteStorage
from sqlalchemy import event, func, select

from bench import padding
from bench.common import median, out, pct, postgres_url, sqlite_url
from bench.server import Process, kap_env, kap_serve
from kap.app import create_app
from kap.ask import extractive
from kap.ask.query import STOP_WORDS
from kap.core.db import Database, utcnow
from kap.core.migrate import migrate
from kap.core.models import Org, OrgMember, Project, ProjectMember, User
from kap.core.runtime import Runtime
from kap.core.settings import Settings, load_settings
from kap.documents.extract import Segment
from kap.documents.ingest import chunk_rows, insert_chunks
from kap.documents.models import Artifact, ArtifactChunk
from kap.documents.search import FTS_RANGE
from kap.raid.models import RaidItem

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
CORPORA = {"northwind": (FIXTURES / "northwind", FIXTURES / "northwind-ask.json"),
           "bayline": (FIXTURES / "bayline", FIXTURES / "bayline-questions.json")}
THRESHOLDS = (0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7)
FILLER_WORDS = ("payroll benefits worker position cost center integration vendor contract status meeting "
                "risk issue decision action owner test script defect severity conversion mock tenant "
                "steering committee budget milestone design build hypercare cutover legacy report time "
                "clock absence compensation approval sign-off workshop schedule review date plan").split()
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass
class Tenant:
    org: uuid.UUID
    project: uuid.UUID
    user: uuid.UUID

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Dev-User": str(self.user), "X-Dev-Role": "member"}


@dataclass
class Corpus:
    name: str
    folder: Path
    answerable: list[dict[str, Any]]
    unanswerable: list[str]


@dataclass
class Result:
    question: str
    expected: list[Fact]
    answer: str
    citations: list[dict[str, Any]]
    found: bool
    baseline: str = ""

    @property
    def hit(self) -> bool:
        return all(holds(self.answer, fact) for fact in self.expected)

    @property
    def baseline_hit(self) -> bool:
        return all(holds(self.baseline, fact) for fact in self.expected)


Fact = str | list[str]


def holds(text: str, fact: Fact) -> bool:
    """Whether a text holds an expected string (or one of a list of equivalent ones)."""
    return any(alt in text for alt in ([fact] if isinstance(fact, str) else fact))


def facts_of(questions: list[dict[str, Any]]) -> list[str]:
    """Every expected string of the questions, alternatives included."""
    return [alt for q in questions for fact in q["answer_contains"] for alt in ([fact] if isinstance(fact, str)
                                                                                  else fact)]


def mutate_fact(fact: Fact) -> Fact:
    return mutate(fact) if isinstance(fact, str) else [mutate(alt) for alt in fact]


@dataclass
class Figures:
    """One corpus's figures on one engine."""

    corpus: str
    results: list[Result]
    refused_unanswerable: int
    unanswerable: int
    times: list[float]
    crossings: list[str] = field(default_factory=list)
    wrongly_answered: list[str] = field(default_factory=list)

    @property
    def hit_rate(self) -> float:
        return sum(r.hit for r in self.results) / max(len(self.results), 1)

    @property
    def baseline_rate(self) -> float:
        return sum(r.baseline_hit for r in self.results) / max(len(self.results), 1)

    @property
    def precision(self) -> float:
        cites = [(r, c) for r in self.results for c in r.citations]
        good = sum(1 for r, c in cites if any(holds(c["quote"], fact) for fact in r.expected))
        return good / len(cites) if cites else 0.0

    @property
    def refusal_rate(self) -> float:
        return self.refused_unanswerable / self.unanswerable if self.unanswerable else 1.0

    @property
    def answerable_refused(self) -> float:
        return sum(not r.found for r in self.results) / max(len(self.results), 1)


def load_corpus(name: str, folder: Path | None = None, questions: Path | None = None) -> Corpus:
    """A named corpus, or a folder with a question file (a list, or answerable/unanswerable lists)."""
    if folder is None or questions is None:
        folder, questions = CORPORA[name]
    data = json.loads(questions.read_text())
    if isinstance(data, list):
        return Corpus(name, folder, data, [])
    return Corpus(name, folder, data["answerable"], [q["question"] for q in data.get("unanswerable", [])])


def mutate(fact: str) -> str:
    """A look-alike of a fact: digits rotated, words spelt backwards (same shape, different figure)."""
    rotated = re.sub(r"\d", lambda m: str((int(m.group()) + 3) % 10), fact)
    return re.sub(r"[A-Za-z]{3,}", lambda m: m.group()[::-1].capitalize(), rotated)


def make_tenant(db: Database, name: str) -> Tenant:
    """Create an org, a project and a member straight through the service engine."""
    tenant = Tenant(org=uuid.uuid4(), project=uuid.uuid4(), user=uuid.uuid4())
    with db.service_transaction() as s:
        s.add(Org(id=tenant.org, name=f"{name} org"))
        s.add(User(id=tenant.user, email=f"{tenant.user.hex[:12]}@bench.example"))
        s.flush()
        s.add(OrgMember(org_id=tenant.org, user_id=tenant.user, role="member"))
        s.add(Project(id=tenant.project, org_id=tenant.org, name=name))
        s.flush()
        s.add(ProjectMember(org_id=tenant.org, project_id=tenant.project, user_id=tenant.user, role="lead"))
    return tenant


def ingest(client: httpx.Client, tenant: Tenant, name: str, content: bytes) -> dict[str, Any]:
    """Upload one file synchronously."""
    response = client.post("/api/ingest-sync", params={"project_id": str(tenant.project)},
                           headers={**tenant.headers, "X-Dev-Role": "lead"}, files={"file": (name, content)})
    if response.status_code != 200:
        raise RuntimeError(f"ingest of {name} failed: {response.status_code} {response.text[:200]}")
    document: dict[str, Any] = response.json()["document"]
    if document["status"] == "needs_ocr":  # a scan: run Tesseract over it, as a person would from the OCR lane
        params = {"project_id": str(tenant.project), "artifact_id": document["id"]}
        resolved = client.post("/api/ocr/resolve", params=params, json={"mode": "ocr"},
                               headers={**tenant.headers, "X-Dev-Role": "lead"})
        if resolved.status_code != 202:
            raise RuntimeError(f"OCR of {name} failed: {resolved.status_code} {resolved.text[:200]}")
    return document


def document_text(client: httpx.Client, tenant: Tenant, artifact_id: str) -> str:
    """The extracted text of a document."""
    response = client.get(f"/api/documents/{artifact_id}", params={"project_id": str(tenant.project)},
                          headers=tenant.headers)
    return "\n".join(page["text"] for page in response.json().get("pages", []))


def load_twin(client: httpx.Client, db: Database, first: Tenant, second: Tenant, docs: dict[str, dict[str, Any]],
              facts: list[str]) -> dict[str, str]:
    """Give the second project the same document names with every expected fact changed.

    The look-alike text is written straight to the second project's chunks (the extraction
    of the first project's files already ran; running it again would only cost time).
    """
    texts = {}
    for name, doc in docs.items():
        body = document_text(client, first, doc["id"])
        for fact in sorted(set(facts), key=len, reverse=True):
            body = body.replace(fact, mutate(fact))
        if body.strip():
            texts[str(insert_text_document(db, second, name, body))] = body
    return texts


def insert_text_document(db: Database, tenant: Tenant, name: str, body: str) -> uuid.UUID:
    """A ready text document with its chunks, written through the service engine."""
    now = utcnow()
    artifact = Artifact(id=uuid.uuid4(), org_id=tenant.org, project_id=tenant.project, name=name,
                        media_type="text/plain", kind="txt", size=len(body.encode()), sha256=uuid.uuid4().hex * 2,
                        storage_key=f"bench/{uuid.uuid4()}", status="ready", page_count=1, chunk_count=0,
                        ocr_pages=[], version=1, shareable=False, meta={}, created_at=now, updated_at=now)
    with db.service_transaction() as s:
        s.add(artifact)
        s.flush()
        artifact.chunk_count = insert_chunks(s, chunk_rows(artifact, [Segment(body.strip(), None, "")]))
    return artifact.id


def ask(client: httpx.Client, tenant: Tenant, question: str) -> tuple[dict[str, Any], float]:
    """Ask one question; return the body and the request's milliseconds."""
    start = time.perf_counter()
    response = client.post("/api/ask", params={"project_id": str(tenant.project)}, headers=tenant.headers,
                           json={"question": question})
    elapsed = (time.perf_counter() - start) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"ask failed: {response.status_code} {response.text[:200]}")
    body: dict[str, Any] = response.json()
    return body, elapsed


class Bm25Baseline:
    """A bare BM25 sentence ranker: SQLite FTS5 over the documents' sentences, stop words removed."""

    def __init__(self, texts: list[str]) -> None:
        self.db = sqlite3.connect(":memory:")
        self.db.execute("CREATE VIRTUAL TABLE s USING fts5(body)")
        self.db.executemany("INSERT INTO s(body) VALUES (?)", [(x,) for t in texts for x in split_sentences(t)])

    def top(self, question: str, k: int) -> list[str]:
        words = [w for w in _WORD.findall(question.lower()) if w not in STOP_WORDS]
        if not words:
            return []
        query = " OR ".join(f'"{w}"' for w in dict.fromkeys(words))
        return [r[0] for r in self.db.execute("SELECT body FROM s WHERE s MATCH ? ORDER BY rank LIMIT ?",
                                              (query, k))]


def split_sentences(text: str) -> list[str]:
    """Sentences of a text: at sentence ends and line ends (a wrapped line of 70+ characters goes on)."""
    lines: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if lines and len(lines[-1]) >= 70 and not lines[-1].endswith((".", "!", "?", ":", ";")):
            lines[-1] += " " + line
        else:
            lines.append(line)
    return [s for line in lines for s in _SENTENCE_END.split(line) if s.strip()]


Asker = Callable[[str], tuple[dict[str, Any], float]]


def run_corpus(corpus: Corpus, ask_main: Asker, ask_twin: Asker | None, texts: dict[str, str],
               twin_texts: dict[str, str], rounds: int = 1) -> Figures:
    """Ask every question; compare with the bare ranker; count refusals and crossings."""
    baseline = Bm25Baseline(list(texts.values()))
    results, times = [], []
    for item in corpus.answerable:
        for _ in range(rounds):
            body, ms = ask_main(item["question"])
            times.append(ms)
        k = max(1, len(body["citations"]))
        results.append(Result(item["question"], list(item["answer_contains"]), body["answer"], body["citations"],
                              body["found"], "\n".join(baseline.top(item["question"], k))))
    refused, wrong = 0, []
    for question in corpus.unanswerable:
        body, ms = ask_main(question)
        times.append(ms)
        refused += not body["found"]
        if body["found"]:
            wrong.append(f"{question!r}: {body['answer'][:140]!r}")
    figures = Figures(corpus.name, results, refused, len(corpus.unanswerable), times, wrongly_answered=wrong)
    facts = facts_of(corpus.answerable)
    figures.crossings = crossings(results, set(texts), _foreign([mutate(f) for f in facts], texts, corpus))
    if ask_twin is not None:
        twin = [Result(q["question"], [mutate_fact(f) for f in q["answer_contains"]],
                       *_answer(ask_twin, q["question"]))
                for q in corpus.answerable]
        figures.crossings += crossings(twin, set(twin_texts), _foreign(facts, twin_texts, corpus))
    return figures


def _foreign(facts: list[str], own_texts: dict[str, str], corpus: Corpus) -> list[str]:
    """The other project's facts that this project's own text and document names do not also hold."""
    own = "\n".join([*own_texts.values(), *(p.name for p in corpus.folder.iterdir())])
    return [f for f in facts if f not in own]


def _answer(asker: Asker, question: str) -> tuple[str, list[dict[str, Any]], bool]:
    body = asker(question)[0]
    return body["answer"], body["citations"], body["found"]


def crossings(results: list[Result], own_docs: set[str], foreign_facts: list[str]) -> list[str]:
    """Answers or citations that show the other project's documents or facts (generated padding is the project's)."""
    found = []
    for result in results:
        for cite in result.citations:
            if cite["artifact_id"] not in own_docs and not cite["name"].startswith("Generated "):
                found.append(f"{result.question!r} cites a foreign document {cite['name']}")
        for fact in foreign_facts:
            if len(fact) > 2 and fact in result.answer:
                found.append(f"{result.question!r} shows the other project's fact {fact!r}")
    return found


def load_corpus_pair(client: httpx.Client, db: Database, corpus: Corpus, main: Tenant, twin: Tenant,
                     settle: Callable[[Tenant], None] | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """Ingest a corpus into one project and its look-alike into the other; return both projects' texts.

    `settle` waits for the uploads' background jobs (OCR, RAID extraction) where they do not run inline.
    """
    docs = {p.name: ingest(client, main, p.name, p.read_bytes()) for p in sorted(corpus.folder.iterdir())
            if p.is_file()}
    if settle is not None:
        settle(main)
    texts = {d["id"]: document_text(client, main, d["id"]) for d in docs.values()}
    facts = facts_of(corpus.answerable)
    return texts, load_twin(client, db, main, twin, docs, facts)


def calibrate(corpora: list[Corpus], askers: dict[str, Asker]) -> list[tuple[float, float, float]]:
    """(threshold, answered with a hit, unanswerable refused) for each threshold, over every corpus together."""
    rows = []
    saved = extractive.MIN_COVERAGE
    try:
        for threshold in THRESHOLDS:
            extractive.MIN_COVERAGE = threshold
            hits = total = refused = unanswerable = 0
            for corpus in corpora:
                asker = askers[corpus.name]
                for item in corpus.answerable:
                    body = asker(item["question"])[0]
                    hits += all(holds(body["answer"], f) for f in item["answer_contains"])
                    total += 1
                for question in corpus.unanswerable:
                    refused += not asker(question)[0]["found"]
                    unanswerable += 1
            rows.append((threshold, hits / max(total, 1), refused / max(unanswerable, 1)))
    finally:
        extractive.MIN_COVERAGE = saved
    return rows


def pad_project(db: Database, tenant: Tenant, target: int, seed: int = 7) -> int:
    """Add generated chunks to the project until it holds `target`; return how many it holds."""
    with db.service_transaction() as s:
        have = s.scalar(select(func.count()).where(ArtifactChunk.project_id == tenant.project)) or 0
    padding.pad(db, padding.Target(tenant.org, tenant.project), max(0, target - have), _filler, seed=seed,
                per_artifact=50)
    if db.is_postgres:  # as autovacuum would soon after a bulk load: plans from the table's real statistics
        padding.analyze(db)
    return max(have, target)


def _filler(rng: random.Random) -> str:
    sentences = []
    for _ in range(rng.randint(3, 6)):
        words = rng.choices(FILLER_WORDS, k=rng.randint(8, 18))
        words[0] = words[0].capitalize()
        sentences.append(" ".join(words) + f" {rng.randint(1, 28)} {rng.choice(['May', 'June', 'July'])}.")
    return " ".join(sentences)


@contextmanager
def database(kind: str) -> Iterator[tuple[str, Path]]:
    """A fresh SQLite file or PostgreSQL database, and a data folder."""
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "postgresql":
            with postgres_url() as url:
                yield url, Path(tmp)
        else:
            with sqlite_url(Path(tmp)) as url:
                yield url, Path(tmp)


@dataclass
class Harness:
    """How the harness reaches the app: an HTTP client, the database for seeding, and the server if one runs."""

    client: httpx.Client
    db: Database
    server: Process | None = None
    data_dir: Path | None = None

    @property
    def where(self) -> str:
        return "through kap serve" if self.server else "in process"

    def settle(self, tenant: Tenant) -> None:
        """Wait until the server's job queue is empty and the project's documents and RAID log stop changing."""
        if self.server is None or self.data_dir is None:
            return  # in process, jobs run inline (KAP_ENV=test)
        queue = SqliteStorage("kap", filename=str(self.data_dir.resolve() / "jobs.db"))
        deadline, last, since = time.monotonic() + 600, None, time.monotonic()
        cpu = self.server.cpu_seconds()
        while time.monotonic() < deadline:
            time.sleep(0.25)
            with self.db.service_transaction() as s:
                statuses = tuple(s.scalars(select(Artifact.status).where(Artifact.project_id == tenant.project)
                                           .order_by(Artifact.id)))
                raid = s.scalar(select(func.count()).where(RaidItem.project_id == tenant.project))
            state = (queue.queue_size(), raid, statuses)
            now_cpu = self.server.cpu_seconds()
            busy = now_cpu - cpu > 0.05
            if state != last or busy or state[0] or "processing" in statuses:
                last, since, cpu = state, time.monotonic(), now_cpu
            elif time.monotonic() - since >= 1.5:
                return
        raise RuntimeError(f"background jobs of {tenant.project} did not settle")


@contextmanager
def in_process(settings: Settings) -> Iterator[Harness]:
    """The app in this process, driven through FastAPI's TestClient (jobs inline)."""
    runtime = Runtime.build(settings)
    try:
        with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as client:
            yield Harness(client, runtime.db)
    finally:
        runtime.close()


@contextmanager
def served(settings: Settings, url: str, data_dir: Path) -> Iterator[Harness]:
    """A real `kap serve` on loopback on the same database and data folder, and an HTTP client to it."""
    db = Database(settings)
    env = kap_env(url, data_dir, KAP_EMBEDDINGS="off", KAP_AUTO_MIGRATE="0")
    server = kap_serve(env, data_dir)
    try:
        with httpx.Client(base_url=server.base, timeout=600) as client:
            yield Harness(client, db, server, data_dir)
    finally:
        server.stop()
        db.dispose()


def evaluate(kind: str, corpora: list[Corpus], *, scale: int = 0, rounds: int = 3, filler_projects: int = 0,
             total: int = 0, calibrating: bool = False, through_server: bool = True) -> dict[str, Any]:
    """Run the whole harness on one database engine; return the figures."""
    with database(kind) as (url, data_dir):
        settings = load_settings(kap_database_url=url, kap_data_dir=data_dir, dev_auth=True, kap_env="test",
                                 rate_limit_max=10_000_000, kap_embeddings="off")
        migrate(settings)
        # the refusal sweep changes the threshold inside the app: only in process
        with served(settings, url, data_dir) if through_server and not calibrating else in_process(settings) as h:
            figures = _evaluate(h, corpora, scale, rounds, filler_projects, total, calibrating)
            figures["where"] = h.where
            return figures


def _evaluate(h: Harness, corpora: list[Corpus], scale: int, rounds: int,
              filler_projects: int, total: int, calibrating: bool) -> dict[str, Any]:
    client, db = h.client, h.db
    figures: dict[str, Any] = {"corpora": []}
    askers: dict[str, Asker] = {}
    loaded = []
    for corpus in corpora:
        main, twin = make_tenant(db, corpus.name.title()), make_tenant(db, f"Look-alike {corpus.name}")
        texts, twin_texts = load_corpus_pair(client, db, corpus, main, twin, h.settle)
        askers[corpus.name] = _asker(client, main)
        loaded.append((corpus, main, twin, texts, twin_texts))
    for corpus, _, twin, texts, twin_texts in loaded:
        figures["corpora"].append(run_corpus(corpus, askers[corpus.name], _asker(client, twin), texts, twin_texts,
                                             rounds))
    if calibrating:
        figures["calibration"] = calibrate(corpora, askers)
    if scale:
        corpus, main, _, texts, _ = loaded[0]
        figures["chunks"] = pad_project(db, main, scale)
        padding.pad_database(db, main.org, total or scale * (1 + filler_projects), _filler)
        with db.service_transaction() as s:
            figures["total_chunks"] = s.scalar(select(func.count()).select_from(ArtifactChunk))
        cpu = h.server.cpu_seconds() if h.server else 0.0
        with statement_times(db) as figures["statements"]:
            figures["scaled"] = [run_corpus(c, askers[c.name], None, t, {}, rounds) for c, _, _, t, _ in loaded[:1]]
        if h.server:  # the server's own CPU per question, beside the wall-clock figures
            figures["server_cpu"] = (h.server.cpu_seconds() - cpu) * 1000
        figures["bare"] = bare_times(db, main, [q["question"] for q in corpus.answerable] + corpus.unanswerable)
    return figures


def bare_times(db: Database, tenant: Tenant, questions: list[str]) -> list[float]:
    """Milliseconds of one bare scoped full-text query per question: its words OR-ed, ranked, 24 rows."""
    times = []
    with db.service_engine.connect() as conn:
        raw: Any = conn.connection.driver_connection
        for question in questions:
            words = [w for w in _WORD.findall(question.lower()) if w not in STOP_WORDS] or ["none"]
            started = time.perf_counter()
            if db.is_postgres:
                raw.execute("SELECT id FROM artifact_chunks, to_tsquery('english', %s) AS q(query) WHERE "
                            "project_id = %s AND tsv_en @@ q.query ORDER BY ts_rank(tsv_en, q.query) DESC LIMIT 24",
                            [" | ".join(words), tenant.project]).fetchall()
            else:
                match = "{head body} : (" + " OR ".join(f'"{w}"' for w in words) + ")"
                raw.execute(f"SELECT rowid FROM artifact_chunks_stem WHERE artifact_chunks_stem MATCH :q "
                            f"AND {FTS_RANGE} ORDER BY rank LIMIT 24",
                            {"q": match, "project": tenant.project.hex}).fetchall()
            times.append((time.perf_counter() - started) * 1000)
        raw.rollback()
    return times


@contextmanager
def statement_times(db: Database) -> Iterator[dict[str, list[float]]]:
    """Milliseconds of every statement the app engine runs, by the statement's first 90 characters."""
    times: dict[str, list[float]] = {}

    def before(conn: Any, _cursor: Any, _statement: str, _params: Any, _context: Any, _many: bool) -> None:
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def after(conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool) -> None:
        started = conn.info["bench_started"].pop()
        key = " ".join(statement.split())[:90]
        times.setdefault(key, []).append((time.perf_counter() - started) * 1000)

    event.listen(db.app_engine, "before_cursor_execute", before)
    event.listen(db.app_engine, "after_cursor_execute", after)
    try:
        yield times
    finally:
        event.remove(db.app_engine, "before_cursor_execute", before)
        event.remove(db.app_engine, "after_cursor_execute", after)


def _asker(client: httpx.Client, tenant: Tenant) -> Asker:
    return lambda question: ask(client, tenant, question)


def print_corpus(kind: str, f: Figures, show_misses: bool, where: str = "in process") -> None:
    """Print one corpus's figures."""
    hits, n = sum(r.hit for r in f.results), len(f.results)
    base = sum(r.baseline_hit for r in f.results)
    ratio = f.hit_rate / f.baseline_rate if f.baseline_rate else float("inf")
    out(f"[{kind}] {f.corpus}: Kap hit rate {f.hit_rate:.1%} ({hits}/{n}) vs bare BM25 {f.baseline_rate:.1%} "
        f"({base}/{n}), ratio {ratio:.2f}x; citation precision {f.precision:.1%}; answerable refused "
        f"{f.answerable_refused:.1%}; unanswerable refused {f.refusal_rate:.1%} "
        f"({f.refused_unanswerable}/{f.unanswerable}); {where} p50 {median(f.times):.1f} ms, "
        f"p95 {pct(f.times, 0.95):.1f} ms; "
        f"crossings {len(f.crossings)}")
    for line in f.crossings:
        out(f"    CROSSING {line}")
    if show_misses:
        for result in f.results:
            if not result.hit:
                out(f"    MISS {result.question!r} want {result.expected}: {result.answer[:200]!r}")
        for line in f.wrongly_answered:
            out(f"    ANSWERED {line}")


def print_figures(kind: str, figures: dict[str, Any], show_misses: bool = False) -> None:
    """Print one engine's figures."""
    where = figures.get("where", "in process")
    for f in figures["corpora"]:
        print_corpus(kind, f, show_misses, where)
    for threshold, answered, refused in figures.get("calibration", []):
        out(f"[{kind}] refusal threshold {threshold:.2f}: answerable hit {answered:.1%}, unanswerable refused "
            f"{refused:.1%}{'  <- current' if threshold == extractive.MIN_COVERAGE else ''}")
    for f in figures.get("scaled", []):
        out(f"[{kind}] at {figures['chunks']} chunks in the project ({figures['total_chunks']} in the database), "
            f"load {os.getloadavg()[0]:.2f}:")
        print_corpus(kind, f, False, where)
        bare = figures["bare"]
        out(f"    bare scoped FTS query p50 {median(bare):.1f} ms, p95 {pct(bare, 0.95):.1f} ms; Ask / bare p95 "
            f"{pct(f.times, 0.95) / pct(bare, 0.95):.2f}x")
        asked = len(f.times)
        if "server_cpu" in figures:
            out(f"    server CPU {figures['server_cpu'] / asked:.1f} ms/question (wall p50 {median(f.times):.1f} ms)")
            continue  # the server's statements run in its own process
        statements = sorted(figures["statements"].items(), key=lambda kv: -sum(kv[1]))
        out(f"    statements per question {sum(len(v) for _, v in statements) / asked:.1f}; costliest:")
        for statement, ms in statements[:6]:
            per = sum(ms) / asked
            out(f"    {per:7.2f} ms/question {len(ms) / asked:4.1f}x p95 {pct(ms, 0.95):6.1f} ms {statement}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--corpus", type=Path, help="a folder of documents (with --questions)")
    parser.add_argument("--questions", type=Path)
    parser.add_argument("--corpora", default="northwind,bayline", help="named corpora, comma-separated")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--scale", type=int, default=0, help="pad the first project to this many chunks")
    parser.add_argument("--filler-projects", type=int, default=0,
                        help="with --scale, as many other projects of the same size")
    parser.add_argument("--total", type=int, default=0,
                        help="with --scale, other projects and orgs until the database holds this many chunks")
    parser.add_argument("--rounds", type=int, default=3, help="times each question is asked for the latency figures")
    parser.add_argument("--calibrate", action="store_true", help="sweep the refusal threshold (in process)")
    parser.add_argument("--in-process", action="store_true",
                        help="drive the app through FastAPI's TestClient instead of a real `kap serve`")
    parser.add_argument("--misses", action="store_true", help="list missed and wrongly answered questions")
    args = parser.parse_args(argv)
    if args.corpus:
        corpora = [load_corpus(args.corpus.name, args.corpus, args.questions)]
    else:
        corpora = [load_corpus(name) for name in args.corpora.split(",")]
    for kind in (["sqlite", "postgresql"] if args.db == "both" else [args.db]):
        print_figures(kind, evaluate(kind, corpora, scale=args.scale, rounds=args.rounds, total=args.total,
                                     filler_projects=args.filler_projects, calibrating=args.calibrate,
                                     through_server=not args.in_process),
                      args.misses)


if __name__ == "__main__":
    main()
