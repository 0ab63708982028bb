"""Scoped retrieval: full-text (strict, then relaxed) fused with optional dense vectors.

The project filter sits inside every query: in the FTS5 expression (`proj : "p<hex>"`),
in PostgreSQL's WHERE over the (project_id, tsv) GIN index, and in the vector scan.
Lists are fused by reciprocal rank fusion (RRF).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from kap.ask.embeddings import EmbeddingsUnavailable, configured_embedder, model_tag, unit
from kap.ask.query import QTerm, Question
from kap.ask.vectors import coverage, dense_ids
from kap.core.deps import ProjectContext
from kap.core.jobs import enqueue_after_commit
from kap.core.settings import Settings
from kap.documents.models import Artifact, ArtifactChunk
from kap.documents.schemas import deep_link
from kap.documents.search import search_chunks

RRF_K = 60
COMMON_CAP = 200
BUILDING = "The semantic index is being built"
POOL = 24


@dataclass(frozen=True)
class Candidate:
    """A retrieved chunk of the asking project."""

    chunk_id: uuid.UUID
    artifact_id: uuid.UUID
    name: str
    page: int | None
    locator: str
    text: str

    def link(self, project_id: uuid.UUID) -> str:
        """The document page at this chunk's page."""
        return deep_link(project_id, self.artifact_id, self.page)


@dataclass
class Retrieved:
    """Fused candidates, best first, with how they were found."""

    candidates: list[Candidate]
    scores: dict[uuid.UUID, float]
    retrieval: str = "fulltext"
    match: str = "all"
    notes: list[str] = field(default_factory=list)
    needs_embedding: bool = False


def rrf(lists: Sequence[Sequence[uuid.UUID]]) -> dict[uuid.UUID, float]:
    """Fuse ranked lists: each item scores the sum of 1 / (k + rank) over the lists it is in."""
    scores: dict[uuid.UUID, float] = {}
    for ranked in lists:
        for rank, item in enumerate(ranked, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (RRF_K + rank)
    return scores


def strict_query(terms: Sequence[QTerm]) -> str:
    """The documents search string: every term as an exact phrase."""
    return " ".join('"' + " ".join(term.words) + '"' for term in terms)


def strict_hits(ctx: ProjectContext, question: Question, limit: int = POOL) -> list[Candidate]:
    """Chunks holding every term exactly (the documents search, 'all' match)."""
    if not question.terms:
        return []
    hits = search_chunks(ctx, strict_query(question.terms), limit, match="all")
    return [Candidate(h.chunk_id, h.artifact_id, h.artifact_name, h.page, h.locator, h.text) for h in hits]


def relaxed_hits(ctx: ProjectContext, question: Question, limit: int = POOL) -> list[Candidate]:
    """Chunks holding any telling term, words matched by their stem as a prefix, rarer terms counting more."""
    if not question.terms:
        return []
    if ctx.session.get_bind().dialect.name == "postgresql":
        return _relaxed_postgres(ctx, question.terms, limit)
    # Terms found in COMMON_CAP chunks or more make the OR query walk most of a large
    # project while bm25 gives them almost no weight: leave them out when a rarer one is there.
    frequencies = _frequencies_sqlite(ctx.session, ctx.project_id, question.terms)
    rare = [t for t, df in zip(question.terms, frequencies, strict=True) if 0 < df < COMMON_CAP]
    terms = rare or [t for t, df in zip(question.terms, frequencies, strict=True) if df]
    return _relaxed_sqlite(ctx.session, ctx.project_id, terms, limit) if terms else []


def _fts5_term(term: QTerm) -> str:
    if term.kind == "word" and len(term.stem) >= 3:
        return f'"{term.stem}" *'
    return '"' + " ".join(term.words) + '"'


def fts5_relaxed(project_id: uuid.UUID, terms: Sequence[QTerm]) -> str:
    """The FTS5 MATCH string: the project AND any term (stems as prefixes, the rest as phrases)."""
    return f'proj : "p{project_id.hex}" AND body : ({" OR ".join(_fts5_term(t) for t in terms)})'


def _frequencies_sqlite(session: Session, project_id: uuid.UUID, terms: Sequence[QTerm]) -> list[int]:
    params: dict[str, object] = {"cap": COMMON_CAP}
    parts = []
    for i, term in enumerate(terms):
        params[f"q{i}"] = fts5_relaxed(project_id, [term])
        parts.append(f"SELECT {i}, (SELECT count(*) FROM (SELECT 1 FROM artifact_chunks_fts "
                     f"WHERE artifact_chunks_fts MATCH :q{i} LIMIT :cap))")
    rows: dict[int, int] = {int(i): int(n) for i, n in session.execute(text(" UNION ALL ".join(parts)), params).all()}
    return [rows.get(i, 0) for i in range(len(terms))]


def _pg_term(i: int, term: QTerm, params: dict[str, object]) -> str:
    if term.kind == "word" and len(term.stem) >= 3:
        params[f"t{i}"] = f"'{term.stem}':*"  # a stem holds word characters only
        return f"to_tsquery('simple', :t{i})"
    params[f"t{i}"] = term.text
    return f"phraseto_tsquery('simple', :t{i})"


def _relaxed_sqlite(session: Session, project_id: uuid.UUID, terms: Sequence[QTerm], limit: int) -> list[Candidate]:
    sql = """
        WITH hits AS (
            SELECT chunk_id, rank AS score FROM artifact_chunks_fts
            WHERE artifact_chunks_fts MATCH :q ORDER BY rank LIMIT :limit)
        SELECT c.id, c.artifact_id, a.name, c.page, c.locator, c.text
        FROM hits JOIN artifact_chunks c ON c.id = hits.chunk_id
        JOIN artifacts a ON a.id = c.artifact_id
        WHERE c.project_id = :project ORDER BY hits.score"""
    rows = session.execute(text(sql), {"q": fts5_relaxed(project_id, terms), "limit": limit,
                                       "project": project_id.hex}).all()
    return [_candidate(*row) for row in rows]


def _relaxed_postgres(ctx: ProjectContext, terms: Sequence[QTerm], limit: int) -> list[Candidate]:
    # One pass over the matching chunks tells which terms each holds; PostgreSQL's own
    # ranking has no inverse document frequency, so rarer terms are weighted here.
    params: dict[str, object] = {"project": ctx.project_id}
    columns = [f"{_pg_term(i, term, params)} AS q{i}" for i, term in enumerate(terms)]
    flags = ", ".join(f"c.tsv @@ q.q{i}" for i in range(len(terms)))
    sql = f"""
        WITH q AS (SELECT {', '.join(columns)})
        SELECT c.id, {flags} FROM artifact_chunks c, q
        WHERE c.project_id = :project AND c.tsv @@ ({' || '.join(f'q.q{i}' for i in range(len(terms)))})"""
    rows = ctx.session.execute(text(sql), params).all()
    return load_candidates(ctx, idf_rank(terms, [(row[0], row[1:]) for row in rows], limit))


def idf_rank(terms: Sequence[QTerm], rows: Sequence[tuple[Any, Sequence[bool]]], limit: int) -> list[uuid.UUID]:
    """Rank rows by the summed weight of the terms they hold, each weighted by its rarity among them."""
    n = len(rows)
    df = [sum(1 for _, held in rows if held[i]) for i in range(len(terms))]
    weights = [t.weight * math.log(1 + n / (d or 1)) for t, d in zip(terms, df, strict=True)]
    scored = sorted(rows, key=lambda r: sum(w for w, h in zip(weights, r[1], strict=True) if h), reverse=True)
    return [_uuid(chunk_id) for chunk_id, _ in scored[:limit]]


def _uuid(value: object) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _candidate(chunk_id: object, artifact_id: object, name: str, page: int | None, locator: str | None,
               body: str) -> Candidate:
    return Candidate(_uuid(chunk_id), _uuid(artifact_id), name, page, locator or "", body)


def load_candidates(ctx: ProjectContext, chunk_ids: Sequence[uuid.UUID]) -> list[Candidate]:
    """The project's chunks with these ids (other projects' ids find nothing)."""
    if not chunk_ids:
        return []
    rows = ctx.session.execute(
        select(ArtifactChunk.id, ArtifactChunk.artifact_id, Artifact.name, ArtifactChunk.page,
               ArtifactChunk.locator, ArtifactChunk.text)
        .join(Artifact, Artifact.id == ArtifactChunk.artifact_id)
        .where(ArtifactChunk.project_id == ctx.project_id, ArtifactChunk.id.in_(list(chunk_ids)))).all()
    found = {row[0]: _candidate(*row) for row in rows}
    return [found[c] for c in chunk_ids if c in found]


def has_documents(ctx: ProjectContext) -> bool:
    """Whether the project has any document at all."""
    return ctx.session.scalar(select(Artifact.id).where(Artifact.project_id == ctx.project_id).limit(1)) is not None


def fuse(lists: Sequence[Sequence[Candidate]], limit: int) -> tuple[list[Candidate], dict[uuid.UUID, float]]:
    """RRF over candidate lists; return the best `limit` and every fused score."""
    by_id = {c.chunk_id: c for ranked in lists for c in ranked}
    scores = rrf([[c.chunk_id for c in ranked] for ranked in lists])
    best = sorted(scores, key=lambda cid: scores[cid], reverse=True)[:limit]
    return [by_id[cid] for cid in best], scores


def retrieve(ctx: ProjectContext, settings: Settings, question: Question, limit: int = 8) -> Retrieved:
    """The project's best chunks for a question: strict full text, relaxed when short, dense when ready."""
    strict = strict_hits(ctx, question)
    lists, match = [strict], "all"
    if len(strict) < limit:
        lists.append(relaxed_hits(ctx, question))
        match = "all+any" if strict else "any"
    dense, mode, notes = dense_hits(ctx, settings, question)
    if dense:
        lists.append(dense)
    candidates, scores = fuse(lists, limit)
    return Retrieved(candidates=candidates, scores=scores, retrieval=mode, match=match, notes=notes,
                     needs_embedding=bool(notes) and notes[0].startswith(BUILDING))


def dense_hits(ctx: ProjectContext, settings: Settings, question: Question) -> tuple[list[Candidate], str, list[str]]:
    """Chunks nearest to the question's vector, once the project's vectors are complete."""
    embedder = configured_embedder(settings)
    if embedder is None:
        return [], "fulltext", []
    try:
        query = embedder.embed([question.text])[0]
    except EmbeddingsUnavailable:
        return [], "fulltext", ["Semantic search is unavailable right now; these are full-text results."]
    tag = model_tag(embedder.name, len(query))
    cover = coverage(ctx.session, ctx.project_id, tag)
    if not cover.complete:
        if cover.total:
            return [], "fulltext", [f"{BUILDING} ({cover.embedded} of {cover.total} passages); "
                                    "these are full-text results."]
        return [], "fulltext", []
    return load_candidates(ctx, dense_ids(ctx.session, ctx.project_id, tag, unit(query))), "hybrid", []


def schedule_embedding(ctx: ProjectContext) -> None:
    """Queue the project's missing vectors, once per transaction."""
    from kap.ask.jobs import embed_project

    if not ctx.session.info.get("ask_embedding_queued"):
        ctx.session.info["ask_embedding_queued"] = True
        enqueue_after_commit(ctx.session, embed_project, str(ctx.project_id))
