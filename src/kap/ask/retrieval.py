"""Scoped retrieval: full-text (strict, then relaxed) fused with optional dense vectors.

The project filter sits inside every query: in the FTS5 rowid range of the project (FTS_RANGE),
in PostgreSQL's WHERE over the (project_id, tsv) GIN index, and in the vector scan.
Lists are fused by reciprocal rank fusion (RRF).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select, text

from kap.ask.embeddings import EmbeddingsUnavailable, configured_embedder, model_tag, unit
from kap.ask.query import QTerm, Question
from kap.ask.vectors import coverage, dense_ids
from kap.core.db import under_rls
from kap.core.deps import ProjectContext
from kap.core.jobs import enqueue_after_commit
from kap.core.settings import Settings
from kap.documents.models import Artifact, ArtifactChunk
from kap.documents.schemas import deep_link
from kap.documents.search import FTS_RANGE

RRF_K = 60
COUNT_CAP = 1000
TIER_CAP = 2000
MAX_TERMS_PER_TIER = 32
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
    frequencies: Frequencies | None = None


def rrf(lists: Sequence[Sequence[uuid.UUID]]) -> dict[uuid.UUID, float]:
    """Fuse ranked lists: each item scores the sum of 1 / (k + rank) over the lists it is in."""
    scores: dict[uuid.UUID, float] = {}
    for ranked in lists:
        for rank, item in enumerate(ranked, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (RRF_K + rank)
    return scores


def fts5_term(term: QTerm) -> str:
    """One term for the stemmed FTS5 index: a word or any of its synonyms, else an exact phrase."""
    if term.kind == "word":
        words = (term.words[0], *term.alts)
        return "(" + " OR ".join(f'"{w}"' for w in words) + ")" if len(words) > 1 else f'"{words[0]}"'
    return '"' + " ".join(term.words) + '"'


def fts5_stemmed(terms: Sequence[QTerm], joiner: str = " AND ") -> str:
    """The FTS5 MATCH string over the stemmed index: the terms (all, or any); the project is FTS_RANGE."""
    return f"{{head body}} : ({joiner.join(fts5_term(t) for t in terms)})"


def fts5_relaxed(terms: Sequence[QTerm]) -> str:
    """The FTS5 MATCH string for any of the terms."""
    return fts5_stemmed(terms, " OR ")


def pg_term(i: int, term: QTerm, params: dict[str, object]) -> str:
    """One term as a tsquery on the `english` configuration (words stemmed, the rest as phrases)."""
    if term.kind == "word":
        parts = []
        for j, word in enumerate((term.words[0], *term.alts)):
            params[f"t{i}_{j}"] = word
            parts.append(f"plainto_tsquery('english', :t{i}_{j})")
        return "(" + " || ".join(parts) + ")"
    params[f"t{i}"] = term.text
    return f"phraseto_tsquery('english', :t{i})"


@dataclass
class Frequencies:
    """How many of the project's chunks hold each term (counted up to COUNT_CAP), and the project's size."""

    df: dict[QTerm, int]
    total: int

    def weights(self, terms: Sequence[QTerm]) -> dict[QTerm, float]:
        return {t: self.idf(t) for t in terms}

    def idf(self, term: QTerm) -> float:
        """The term's weight times its rarity in the project (a term no chunk holds counts as held once)."""
        n = max(self.total, 1)
        return term.weight * math.log(1 + n / max(self.df.get(term, 0), 1))


def frequencies(ctx: ProjectContext, terms: Sequence[QTerm]) -> Frequencies:
    """Each term's document frequency in the project, and the project's chunk count, in one statement.

    Under RLS a word is counted by `kap_count_term` (ask_0003): from the project's term counts when
    they settle it (a common word is not looked up in the index), else live like a phrase.
    """
    params: dict[str, object] = {"cap": COUNT_CAP, "project": _project_param(ctx)}
    parts = []
    postgres = ctx.session.get_bind().dialect.name == "postgresql"
    for i, term in enumerate(terms):
        if postgres:
            query = pg_term(i, term, params)
            if under_rls(ctx.session) and term.kind == "word":
                words = ", ".join(f":t{i}_{j}" for j in range(1 + len(term.alts)))
                parts.append(f"kap_count_term(CAST(:project AS uuid), CAST(ARRAY[{words}] AS text[]), {query}, :cap)")
            elif under_rls(ctx.session):
                parts.append(f"kap_count_chunks(CAST(:project AS uuid), {query}, :cap)")
            else:
                parts.append(f"(SELECT count(*) FROM (SELECT 1 FROM artifact_chunks c WHERE "
                             f"c.project_id = CAST(:project AS uuid) AND c.tsv_en @@ {query} LIMIT :cap) s{i})")
        else:
            params[f"q{i}"] = fts5_stemmed([term])
            parts.append(f"(SELECT count(*) FROM (SELECT 1 FROM artifact_chunks_stem "
                         f"WHERE artifact_chunks_stem MATCH :q{i} AND {FTS_RANGE} LIMIT :cap))")
    # The project's size from its documents' chunk counts: a sum over the documents, not a walk over every chunk.
    cast = "CAST(:project AS uuid)" if postgres else ":project"
    parts.append(f"(SELECT coalesce(sum(chunk_count), 0) FROM artifacts WHERE project_id = {cast})")
    row = ctx.session.execute(text("SELECT " + ", ".join(parts)), params).one()
    return Frequencies(df={t: int(row[i]) for i, t in enumerate(terms)}, total=int(row[-1]))


def _project_param(ctx: ProjectContext) -> object:
    return ctx.project_id if ctx.session.get_bind().dialect.name == "postgresql" else ctx.project_id.hex


def pg_tiers(tiers: Sequence[Sequence[QTerm]], params: dict[str, object]) -> str:
    """The tiers as one PostgreSQL tsquery[] (each tier: all its terms)."""
    parts = []
    for k, tier in enumerate(tiers):
        parts.append(" && ".join(pg_term(k * MAX_TERMS_PER_TIER + i, t, params) for i, t in enumerate(tier)))
    return "ARRAY[" + ", ".join(parts) + "]::tsquery[]"


def ranked_tiers(ctx: ProjectContext, tiers: Sequence[Sequence[QTerm]], limit: int,
                 weights: Mapping[QTerm, float] | None = None) -> list[tuple[Candidate, int]]:
    """The project's chunks holding every term of a tier, tier by tier, best first within one, until `limit`.

    Each chunk comes with the tier that found it. PostgreSQL ranks at most TIER_CAP chunks of a
    tier by ts_rank, all tiers in one call; SQLite by BM25 over the project (`sqlite_ranked`), a query per tier.
    """
    if not tiers:
        return []
    found: dict[uuid.UUID, int] = {}
    if ctx.session.get_bind().dialect.name == "postgresql" and under_rls(ctx.session):
        params: dict[str, object] = {"project": ctx.project_id, "limit": limit, "cap": TIER_CAP}
        sql = (f"SELECT id, tier FROM kap_rank_tiers(CAST(:project AS uuid), {pg_tiers(tiers, params)}, "
               ":limit, :cap)")
        found = {_uuid(r[0]): int(r[1]) - 1 for r in ctx.session.execute(text(sql), params).all()}
    else:
        for k, tier in enumerate(tiers):
            for chunk_id in ranked_ids(ctx, tier, limit, weights):
                found.setdefault(chunk_id, k)
            if len(found) >= limit:
                break
    return [(c, found[c.chunk_id]) for c in load_candidates(ctx, list(found)[:limit])]


# The newest TIER_CAP chunks of a tier in the project's rowid range (FTS5 applies both inside its doclist scan),
# ranked by BM25 in SQL (`sqlite_ranked`). The FTS rowid's low 32 bits are the chunk's rowid; the project is
# checked on each row the rowids find (as a plain `project_id = ?` SQLite could walk the project's index).
SQLITE_NEWEST = f"""
    SELECT c.id AS id, h.rid AS rid, lower(c.text) AS t, instr(c.text || char(10), char(10)) - 1 AS hl FROM (
        SELECT rowid AS rid FROM artifact_chunks_stem WHERE artifact_chunks_stem MATCH :q AND {FTS_RANGE}
        ORDER BY rowid DESC LIMIT :cap) h
    JOIN artifact_chunks c ON c.rowid = (h.rid & 4294967295)
    WHERE coalesce(c.project_id, c.project_id) = :project"""
BM25_K1, BM25_B, HEAD_WEIGHT = 1.2, 0.75, 2.0


def sqlite_ranked(terms: Sequence[QTerm], weights: Mapping[QTerm, float],
                  params: dict[str, object]) -> str:
    """BM25 over the newest TIER_CAP chunks holding every term, the first line (heading) weighing double.

    FTS5's bm25() weighs each term by its rarity in the whole index, which it counts on every call by
    walking the term's postings in every project: at a million chunks, most of a query's time. Here a
    term weighs its rarity in the project (`weights`, from `frequencies`), and its count in a chunk is
    how often the chunk's text holds its stems (at least once: the MATCH found every term).
    """
    fallback = min(weights.values(), default=1.0)
    counts, score = [], []
    for i, term in enumerate(terms):
        body, head = [], []
        for j, needle in enumerate(_needles(term)):
            params[f"n{i}_{j}"] = needle
            body.append(f"(length(t) - length(replace(t, :n{i}_{j}, ''))) / {len(needle)}")
            head.append(f"(hl - length(replace(substr(t, 1, hl), :n{i}_{j}, ''))) / {len(needle)}")
        counts.append(f"max({' + '.join(body)}, 1) AS b{i}, {' + '.join(head)} AS h{i}")
        params[f"w{i}"] = weights.get(term, fallback)
        score.append(f":w{i} * ({HEAD_WEIGHT} * {_saturate(f'h{i}', 'hl', 'ah')} + {_saturate(f'b{i}', 'bl', 'ab')})")
    return (f"WITH f AS MATERIALIZED ({SQLITE_NEWEST}), "
            f"n AS MATERIALIZED (SELECT id, rid, hl, length(t) AS bl, {', '.join(counts)} FROM f), "
            "a AS (SELECT max(avg(bl), 1.0) AS ab, max(avg(hl), 1.0) AS ah FROM n) "
            f"SELECT id FROM n, a ORDER BY {' + '.join(score)} DESC, rid DESC LIMIT :limit")


def _needles(term: QTerm) -> tuple[str, ...]:
    if term.kind == "word":
        return tuple(sorted(term.stems))
    return tuple(n for n in dict.fromkeys((term.text.lower(), " ".join(term.words))) if n)


def _saturate(tf: str, length: str, average: str) -> str:
    return f"({tf} * {BM25_K1 + 1} / ({tf} + {BM25_K1} * ({1 - BM25_B} + {BM25_B} * {length} / {average})))"


def ranked_ids(ctx: ProjectContext, terms: Sequence[QTerm], limit: int,
               weights: Mapping[QTerm, float] | None = None) -> list[uuid.UUID]:
    """The project's chunks holding every term (stemmed), best first: BM25 on SQLite, ts_rank on PostgreSQL."""
    if ctx.session.get_bind().dialect.name == "postgresql":
        params: dict[str, object] = {"project": ctx.project_id, "limit": limit, "cap": TIER_CAP}
        query = " && ".join(pg_term(i, t, params) for i, t in enumerate(terms))
        sql = (f"SELECT s.id FROM (SELECT c.id, c.tsv_en FROM artifact_chunks c WHERE c.project_id = "
               f"CAST(:project AS uuid) AND c.tsv_en @@ ({query}) LIMIT :cap) s "
               f"ORDER BY ts_rank(s.tsv_en, {query}) DESC, s.id LIMIT :limit")
        return [_uuid(r[0]) for r in ctx.session.execute(text(sql), params).all()]
    params = {"q": fts5_stemmed(terms), "cap": TIER_CAP, "limit": limit, "project": ctx.project_id.hex}
    sql = sqlite_ranked(terms, weights or {}, params)
    return [_uuid(r[0]) for r in ctx.session.execute(text(sql), params).all()]


# Words that a unit answering the type usually holds: the first tier asks for the terms and one of them.
TYPE_CUES = {
    "duration": QTerm("minutes", ("minutes",), "word", ("hours", "days", "weeks", "months", "years")),
    "frequency": QTerm("daily", ("daily",), "word", ("weekly", "monthly", "hourly", "nightly", "every")),
    "decision": QTerm("decided", ("decided",), "word", ("decision", "agreed", "approved")),
}


def subsets(terms: Sequence[QTerm]) -> list[list[QTerm]]:
    """The term sets to try, best first: all; each one left out; then the rarest ones, shrinking to one."""
    if not terms:
        return []
    out = [list(terms)]
    if len(terms) > 2:
        out += [[t for t in terms if t is not left] for left in reversed(terms)]
    out += [list(terms[:size]) for size in range(len(terms) - 2, 0, -1)]
    if len(terms) == 2:
        out += [[terms[0]], [terms[1]]]
    return out


def text_hits(ctx: ProjectContext, question: Question, freq: Frequencies,
              limit: int = POOL) -> tuple[list[Candidate], str]:
    """Chunks holding all the terms, then the best subsets (never straight to "any term"), in one query.

    Terms no chunk holds are left out of the queries (they still count against the evidence).
    """
    present = sorted((t for t in question.terms if freq.df.get(t, 0) > 0), key=lambda t: -freq.idf(t))
    cue = TYPE_CUES.get(question.expect)
    tiers = ([[*present, cue]] if cue and present else []) + subsets(present)
    found = ranked_tiers(ctx, tiers, limit, freq.weights(present))
    tried = len(tiers) if len(found) < limit else max(k for _, k in found) + 1
    match = "all" if tried <= 1 + bool(cue and present) and len(present) == len(question.terms) else "subset"
    return [c for c, _ in found], match


def _uuid(value: object) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _candidate(chunk_id: object, artifact_id: object, name: str, page: int | None, locator: str | None,
               body: str) -> Candidate:
    return Candidate(_uuid(chunk_id), _uuid(artifact_id), name, page, locator or "", body)


def load_candidates(ctx: ProjectContext, chunk_ids: Sequence[uuid.UUID]) -> list[Candidate]:
    """The project's chunks with these ids (other projects' ids find nothing)."""
    if not chunk_ids:
        return []
    # The project is checked on each row the primary keys find: as a plain `project_id = ?` SQLite would
    # walk the project's index (every chunk of it) instead of looking the ids up.
    in_project = func.coalesce(ArtifactChunk.project_id, ArtifactChunk.project_id) == ctx.project_id
    rows = ctx.session.execute(
        select(ArtifactChunk.id, ArtifactChunk.artifact_id, Artifact.name, ArtifactChunk.page,
               ArtifactChunk.locator, ArtifactChunk.text)
        .join(Artifact, Artifact.id == ArtifactChunk.artifact_id)
        .where(ArtifactChunk.id.in_(list(chunk_ids)), in_project)).all()
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


def retrieve(ctx: ProjectContext, settings: Settings, question: Question, limit: int = POOL) -> Retrieved:
    """The project's best chunks for a question: stemmed full text relaxed to the best subset, dense when ready."""
    freq = frequencies(ctx, question.terms)
    strict, match = text_hits(ctx, question, freq, limit)
    lists = [strict]
    dense, mode, notes = dense_hits(ctx, settings, question)
    if dense:
        lists.append(dense)
    candidates, scores = fuse(lists, limit)
    return Retrieved(candidates=candidates, scores=scores, retrieval=mode, match=match, notes=notes,
                     needs_embedding=bool(notes) and notes[0].startswith(BUILDING), frequencies=freq)


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
    cover = coverage(ctx.session, ctx.scope, tag)
    if not cover.complete:
        if cover.total:
            return [], "fulltext", [f"{BUILDING} ({cover.embedded} of {cover.total} passages); "
                                    "these are full-text results."]
        return [], "fulltext", []
    return load_candidates(ctx, dense_ids(ctx.session, ctx.scope, tag, unit(query))), "hybrid", []


def schedule_embedding(ctx: ProjectContext) -> None:
    """Queue the project's missing vectors, once per transaction."""
    from kap.ask.jobs import embed_project

    if not ctx.session.info.get("ask_embedding_queued"):
        ctx.session.info["ask_embedding_queued"] = True
        enqueue_after_commit(ctx.session, embed_project, str(ctx.project_id))
