"""Ask Kap quality harness: hit rate, citation precision, latency, and zero crossings between tenants.

Loads a corpus into a fresh project (org 1) and a look-alike copy with different
figures into a project of another org (same document names), asks every question of a
JSON file (`[{"question": ..., "answer_contains": [...]}]`) in both, and prints:

- hit rate: the answer holds every expected string;
- citation precision: cited documents that hold an expected string, over all citations;
- p50 / p95 latency of `POST /api/ask` (the whole request: auth, retrieval, answer, log);
- crossings: answers or citations in one project that show the other project's facts or documents.

`--scale N` then pads the first project with generated chunks up to N and measures again.

    python -m bench.ask_eval --corpus ../shared/corpus/northwind \
        --questions ../shared/corpus/northwind-questions.json --scale 10000 [--db postgresql]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select

from bench.common import median, out, pct, postgres_url, sqlite_url
from kap.app import create_app
from kap.core.db import utcnow
from kap.core.migrate import migrate
from kap.core.models import Org, OrgMember, Project, ProjectMember, User
from kap.core.runtime import Runtime
from kap.core.settings import load_settings
from kap.documents.models import Artifact, ArtifactChunk

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT / "tests" / "fixtures" / "northwind"
DEFAULT_QUESTIONS = ROOT / "tests" / "fixtures" / "northwind-questions.json"
FILLER_WORDS = ("payroll benefits worker position cost center integration vendor contract status meeting "
                "risk issue decision action owner test script defect severity conversion mock tenant "
                "steering committee budget milestone design build hypercare cutover legacy report time "
                "clock absence compensation approval sign-off workshop schedule review date plan").split()


@dataclass
class Tenant:
    org: uuid.UUID
    project: uuid.UUID
    user: uuid.UUID

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Dev-User": str(self.user), "X-Dev-Role": "member"}


@dataclass
class Result:
    question: str
    expected: list[str]
    answer: str
    citations: list[dict[str, Any]]
    ms: float

    @property
    def hit(self) -> bool:
        return all(fact in self.answer for fact in self.expected)


@dataclass
class Report:
    results: list[Result]
    times: list[float]
    crossings: list[str] = field(default_factory=list)
    precision: float = 0.0

    @property
    def hit_rate(self) -> float:
        return sum(r.hit for r in self.results) / max(len(self.results), 1)


def mutate(fact: str) -> str:
    """A look-alike of a fact: digits rotated, words spelt backwards (same shape, different figure)."""
    rotated = re.sub(r"\d", lambda m: str((int(m.group()) + 3) % 10), fact)
    return re.sub(r"[A-Za-z]{3,}", lambda m: m.group()[::-1].capitalize(), rotated)


def make_tenant(runtime: Runtime, name: str) -> Tenant:
    """Create an org, a project and a member straight through the service engine."""
    tenant = Tenant(org=uuid.uuid4(), project=uuid.uuid4(), user=uuid.uuid4())
    with runtime.db.service_transaction() as s:
        s.add(Org(id=tenant.org, name=f"{name} org"))
        s.add(User(id=tenant.user, email=f"{tenant.user.hex[:12]}@bench.example"))
        s.flush()
        s.add(OrgMember(org_id=tenant.org, user_id=tenant.user, role="member"))
        s.add(Project(id=tenant.project, org_id=tenant.org, name=name))
        s.flush()
        s.add(ProjectMember(org_id=tenant.org, project_id=tenant.project, user_id=tenant.user, role="lead"))
    return tenant


def ingest(client: TestClient, tenant: Tenant, name: str, content: bytes) -> dict[str, Any]:
    """Upload one file synchronously."""
    response = client.post("/api/ingest-sync", params={"project_id": str(tenant.project)},
                           headers={**tenant.headers, "X-Dev-Role": "lead"}, files={"file": (name, content)})
    if response.status_code != 200:
        raise RuntimeError(f"ingest of {name} failed: {response.status_code} {response.text[:200]}")
    document: dict[str, Any] = response.json()["document"]
    return document


def document_text(client: TestClient, tenant: Tenant, artifact_id: str) -> str:
    """The extracted text of a document."""
    response = client.get(f"/api/documents/{artifact_id}", params={"project_id": str(tenant.project)},
                          headers=tenant.headers)
    return "\n".join(page["text"] for page in response.json().get("pages", []))


def load_twin(client: TestClient, first: Tenant, second: Tenant, docs: dict[str, dict[str, Any]],
              facts: list[str]) -> dict[str, str]:
    """Give the second project the same document names with every expected fact changed."""
    texts = {}
    for name, doc in docs.items():
        body = document_text(client, first, doc["id"])
        for fact in facts:
            body = body.replace(fact, mutate(fact))
        if body.strip():
            twin = ingest(client, second, name if name.endswith((".txt", ".md", ".csv")) else f"{name}.txt",
                          body.encode())
            texts[twin["id"]] = body
    return texts


def ask(client: TestClient, tenant: Tenant, question: str) -> tuple[dict[str, Any], float]:
    """Ask one question; return the body and the request's milliseconds."""
    start = time.perf_counter()
    response = client.post("/api/ask", params={"project_id": str(tenant.project)}, headers=tenant.headers,
                           json={"question": question})
    elapsed = (time.perf_counter() - start) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"ask failed: {response.status_code} {response.text[:200]}")
    body: dict[str, Any] = response.json()
    return body, elapsed


def run_questions(client: TestClient, tenant: Tenant, questions: list[dict[str, Any]], rounds: int,
                  expect: Any = None) -> Report:
    """Ask every question `rounds` times; keep the last answer of each and every timing."""
    results, times = [], []
    for item in questions:
        expected = [expect(f) for f in item["answer_contains"]] if expect else list(item["answer_contains"])
        for _ in range(rounds):
            body, ms = ask(client, tenant, item["question"])
            times.append(ms)
        results.append(Result(item["question"], expected, body["answer"], body["citations"], ms))
    return Report(results=results, times=times)


def citation_precision(report: Report, texts: dict[str, str]) -> float:
    """Citations whose document holds one of the expected strings, over all citations."""
    good = total = 0
    for result in report.results:
        for cite in result.citations:
            total += 1
            good += any(fact in texts.get(cite["artifact_id"], "") for fact in result.expected)
    return good / total if total else 0.0


def crossings(report: Report, own_docs: set[str], foreign_facts: list[str]) -> list[str]:
    """Answers or citations that show the other project's documents or facts."""
    found = []
    for result in report.results:
        for cite in result.citations:
            if cite["artifact_id"] not in own_docs:
                found.append(f"{result.question!r} cites a foreign document {cite['name']}")
        for fact in foreign_facts:
            if fact in result.answer:
                found.append(f"{result.question!r} shows the other project's fact {fact!r}")
    return found


def pad_project(runtime: Runtime, tenant: Tenant, target: int, seed: int = 7) -> int:
    """Add generated chunks to the project until it holds `target`; return how many it holds."""
    rng = random.Random(seed)
    with runtime.db.service_transaction() as s:
        have = s.scalar(select(func.count()).where(ArtifactChunk.project_id == tenant.project)) or 0
    per_doc, now = 50, utcnow()
    while have < target:
        with runtime.db.service_transaction() as s:
            artifact_id = uuid.uuid4()
            s.execute(insert(Artifact).values(
                id=artifact_id, org_id=tenant.org, project_id=tenant.project, name=f"Generated {have}.txt",
                media_type="text/plain", kind="text", size=1, sha256=uuid.uuid4().hex * 2,
                storage_key=f"bench/{artifact_id}", status="ready", page_count=1, chunk_count=per_doc,
                ocr_pages=[], version=1, shareable=False, meta={}, created_at=now, updated_at=now))
            count = min(per_doc, target - have)
            s.execute(insert(ArtifactChunk), [
                {"id": uuid.uuid4(), "org_id": tenant.org, "project_id": tenant.project,
                 "artifact_id": artifact_id, "seq": i, "page": None, "locator": "", "created_at": now,
                 "text": _filler(rng)} for i in range(count)])
            have += count
    return have


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


def evaluate(kind: str, corpus: Path, questions: list[dict[str, Any]], *, scale: int = 0,
             rounds: int = 5) -> dict[str, Any]:
    """Run the whole harness on one database engine; return the figures."""
    with database(kind) as (url, data_dir):
        settings = load_settings(kap_database_url=url, kap_data_dir=data_dir, dev_auth=True, kap_env="test",
                                 rate_limit_max=10_000_000, kap_embeddings="off")
        migrate(settings)
        runtime = Runtime.build(settings)
        try:
            with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as client:
                return _evaluate(client, runtime, corpus, questions, scale, rounds)
        finally:
            runtime.close()


def _evaluate(client: TestClient, runtime: Runtime, corpus: Path, questions: list[dict[str, Any]], scale: int,
              rounds: int) -> dict[str, Any]:
    first, second = make_tenant(runtime, "Northwind"), make_tenant(runtime, "Look-alike")
    docs = {p.name: ingest(client, first, p.name, p.read_bytes()) for p in sorted(corpus.iterdir()) if p.is_file()}
    texts = {d["id"]: document_text(client, first, d["id"]) for d in docs.values()}
    facts = [f for q in questions for f in q["answer_contains"]]
    twin_texts = load_twin(client, first, second, docs, facts)
    main = run_questions(client, first, questions, rounds)
    main.precision = citation_precision(main, texts)
    twin = run_questions(client, second, questions, 1, expect=mutate)
    twin.precision = citation_precision(twin, twin_texts)
    main.crossings = crossings(main, set(texts), [mutate(f) for f in facts])
    twin.crossings = crossings(twin, set(twin_texts), [f for f in facts if mutate(f) != f])
    figures = {"questions": len(questions), "main": main, "twin": twin}
    if scale:
        figures["chunks"] = pad_project(runtime, first, scale)
        scaled = run_questions(client, first, questions, rounds)
        scaled.precision = citation_precision(scaled, texts)
        figures["scaled"] = scaled
    return figures


def print_figures(kind: str, figures: dict[str, Any]) -> None:
    """Print one engine's figures."""
    main, twin = figures["main"], figures["twin"]
    out(f"[{kind}] northwind: hit rate {main.hit_rate:.0%} ({sum(r.hit for r in main.results)}/{len(main.results)}), "
        f"citation precision {main.precision:.0%}, p50 {median(main.times):.1f} ms, p95 {pct(main.times, 0.95):.1f} ms")
    out(f"[{kind}] look-alike project (other org): hit rate {twin.hit_rate:.0%}, citation precision "
        f"{twin.precision:.0%}, crossings {len(main.crossings) + len(twin.crossings)}")
    for line in main.crossings + twin.crossings:
        out(f"    CROSSING {line}")
    for result in main.results:
        if not result.hit:
            out(f"    MISS {result.question!r}: {result.answer[:160]!r}")
    if "scaled" in figures:
        scaled = figures["scaled"]
        out(f"[{kind}] at {figures['chunks']} chunks in the project: hit rate {scaled.hit_rate:.0%}, citation "
            f"precision {scaled.precision:.0%}, p50 {median(scaled.times):.1f} ms, "
            f"p95 {pct(scaled.times, 0.95):.1f} ms")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--scale", type=int, default=0, help="pad the project to this many chunks and measure again")
    parser.add_argument("--rounds", type=int, default=5, help="times each question is asked for the latency figures")
    args = parser.parse_args(argv)
    questions = json.loads(args.questions.read_text())
    for kind in (["sqlite", "postgresql"] if args.db == "both" else [args.db]):
        print_figures(kind, evaluate(kind, args.corpus, questions, scale=args.scale, rounds=args.rounds))


if __name__ == "__main__":
    main()
