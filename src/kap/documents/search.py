"""Full-text search over a project's chunks, scoped inside the index.

SQLite: FTS5 with bm25, each project one contiguous rowid range of the index (documents_0004),
so the query is `MATCH 'body : (...)' AND rowid BETWEEN <the project's range>`: FTS5 seeks
within the terms' doclists to the range, and a hit in another project cannot come back.
PostgreSQL: a stored `tsvector` with a GIN index over (project_id, tsv).
`search_chunks` is the one entry point of the documents search. Ask ranks over the
stemmed index beside it (documents_0002: FTS5 `porter`, PostgreSQL `english`).
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import text
from sqlalchemy.orm import Session

from kap.core.db import under_rls
from kap.core.deps import ProjectContext
from kap.core.errors import ValidationFailed
from kap.documents.schemas import deep_link

Match = Literal["all", "any"]
MAX_TERMS = 32
# At most this many of the project's matching chunks are ranked for one query (the newest on SQLite, the
# first the index finds on PostgreSQL): at 100,000 chunks a common word matches thousands, and ranking
# each one costs a row read. A query that matches fewer is ranked exactly.
SEARCH_CAP = 1000
_TERM = re.compile(r'"[^"]*"|\S+')
_WORD = re.compile(r"\w+", re.UNICODE)
_START, _STOP = "\x02", "\x03"
# The rowid range of the project `:project` (hex) in the SQLite FTS5 indexes: its number in the high
# 32 bits, the chunk's rowid in the low. A project without a number (no chunk yet) has no range.
FTS_RANGE_START = "(SELECT num << 32 FROM fts_projects WHERE project_id = :project)"
FTS_RANGE = (f"rowid BETWEEN {FTS_RANGE_START} "
             "AND (SELECT (num << 32) | 4294967295 FROM fts_projects WHERE project_id = :project)")
# The FTS rowid of the chunk row `c`, as the documents_0004 triggers write it.
FTS_KEY = "(((SELECT num FROM fts_projects WHERE project_id = c.project_id) << 32) | c.rowid)"


@dataclass(frozen=True)
class ChunkHit:
    """A ranked chunk: where it is, its text and a highlighted snippet (HTML-escaped, <mark> around hits)."""

    chunk_id: uuid.UUID
    artifact_id: uuid.UUID
    artifact_name: str
    page: int | None
    locator: str
    text: str
    snippet: str
    score: float

    def link(self, project_id: uuid.UUID) -> str:
        """The document page at this chunk's page."""
        return deep_link(project_id, self.artifact_id, self.page)


@dataclass(frozen=True)
class Term:
    """One query term: its text as typed and its words (matched as a phrase)."""

    raw: str
    words: tuple[str, ...]


def query_terms(query: str) -> list[Term]:
    """Split a user query into terms at spaces; quoted text is one term."""
    terms = []
    for raw in _TERM.findall(query):
        clean = raw.strip('"').strip()
        words = tuple(_WORD.findall(clean.lower()))
        if words:
            terms.append(Term(clean, words))
    return terms[:MAX_TERMS]


def search_chunks(ctx: ProjectContext, query: str, limit: int = 10, *, match: Match = "all",
                  artifact_ids: Sequence[uuid.UUID] | None = None) -> list[ChunkHit]:
    """The project's chunks that match `query`, best first ('all' terms, or 'any' of them; SEARCH_CAP ranked)."""
    terms = query_terms(query)
    if not terms:
        raise ValidationFailed("the query has no searchable words", code="empty_query")
    limit = max(1, min(limit, 200))
    if ctx.session.get_bind().dialect.name == "postgresql":
        return _postgres(ctx.session, ctx.project_id, terms, limit, match, artifact_ids)
    return _sqlite(ctx.session, ctx.project_id, terms, limit, match, artifact_ids)


def fts5_expression(terms: list[Term], match: Match) -> str:
    """The FTS5 MATCH string: the terms, each a phrase of plain words (the project is FTS_RANGE)."""
    joiner = " AND " if match == "all" else " OR "
    body = joiner.join('"' + " ".join(term.words) + '"' for term in terms)
    return f"body : ({body})"


def _sqlite(session: Session, project_id: uuid.UUID, terms: list[Term], limit: int, match: Match,
            artifact_ids: Sequence[uuid.UUID] | None) -> list[ChunkHit]:
    params: dict[str, object] = {"q": fts5_expression(terms, match), "project": project_id.hex,
                                 "limit": limit, "start": _START, "stop": _STOP}
    restrict = ""
    if artifact_ids is not None:
        names = [f"a{i}" for i in range(len(artifact_ids))] or ["none"]
        params.update({f"a{i}": a.hex for i, a in enumerate(artifact_ids)} or {"none": ""})
        restrict = f"AND c.artifact_id IN ({', '.join(':' + n for n in names)})"
    inner_limit, newest = "", ""
    if artifact_ids is None:
        # The rowid bound is found without ranking; FTS5 applies it inside the ranked scan. With fewer
        # matches than the cap there is no bound and the project's own start stands in: FTS5 takes one
        # lower bound, and a bound of 0 would walk every earlier project's postings (a 10,000-chunk
        # project in a 1,000,000-chunk database: p95 112 ms against 9 ms).
        inner_limit = "LIMIT :limit"
        newest = ("AND rowid >= coalesce((SELECT rowid FROM artifact_chunks_fts WHERE artifact_chunks_fts MATCH :q "
                  f"AND {FTS_RANGE} ORDER BY rowid DESC LIMIT 1 OFFSET :cap - 1), {FTS_RANGE_START})")
        params["cap"] = SEARCH_CAP
    sql = f"""
        WITH hits AS (
            SELECT chunk_id, rank AS score, snippet(artifact_chunks_fts, 0, :start, :stop, '…', 24) AS snip
            FROM artifact_chunks_fts WHERE artifact_chunks_fts MATCH :q AND {FTS_RANGE} {newest}
            ORDER BY rank {inner_limit})
        SELECT c.id, c.artifact_id, a.name, c.page, c.locator, c.text, hits.snip, hits.score
        FROM hits JOIN artifact_chunks c ON c.id = hits.chunk_id
        JOIN artifacts a ON a.id = c.artifact_id
        WHERE c.project_id = :project {restrict}
        ORDER BY hits.score LIMIT :limit"""
    rows = session.execute(text(sql), params).all()
    return [_hit(r[0], r[1], r[2], r[3], r[4], r[5], r[6], -float(r[7])) for r in rows]


def _postgres(session: Session, project_id: uuid.UUID, terms: list[Term], limit: int, match: Match,
              artifact_ids: Sequence[uuid.UUID] | None) -> list[ChunkHit]:
    # The raw term goes to PostgreSQL's own parser, which split the document text the same way.
    params: dict[str, object] = {f"t{i}": term.raw for i, term in enumerate(terms)}
    joiner = " && " if match == "all" else " || "
    tsquery = joiner.join(f"phraseto_tsquery('simple', :t{i})" for i in range(len(terms)))
    params.update({"project": project_id, "limit": limit, "cap": SEARCH_CAP,
                   "opts": f"StartSel={_START}, StopSel={_STOP}, MaxWords=35, MinWords=12, MaxFragments=2"})
    params["artifacts"] = list(artifact_ids) if artifact_ids is not None else None
    sql = f"""
        WITH q AS (SELECT ({tsquery}) AS query),
        hits AS ({_pg_hits(session)})
        SELECT hits.id, hits.artifact_id, a.name, hits.page, hits.locator, hits.body,
               ts_headline('simple', hits.body, q.query, :opts), hits.score
        FROM hits JOIN artifacts a ON a.id = hits.artifact_id, q
        ORDER BY hits.score DESC, hits.id"""
    rows = session.execute(text(sql), params).all()
    return [_hit(r[0], r[1], r[2], r[3], r[4], r[5], r[6], float(r[7])) for r in rows]


def _pg_hits(session: Session) -> str:
    """Ranked chunk rows: through the visibility-checking function under RLS, directly for service work."""
    if under_rls(session):
        return ("SELECT h.* FROM q, kap_search_chunks(CAST(:project AS uuid), q.query, :limit, "
                "CAST(:artifacts AS uuid[]), :cap) AS h")
    return ("SELECT s.id, s.artifact_id, s.page, s.locator, s.body, ts_rank_cd(s.tsv, s.query) AS score FROM ("
            "SELECT c.id, c.artifact_id, c.page, c.locator, c.text AS body, c.tsv, q.query "
            "FROM artifact_chunks c, q WHERE c.project_id = CAST(:project AS uuid) AND c.tsv @@ q.query "
            "AND (CAST(:artifacts AS uuid[]) IS NULL OR c.artifact_id = ANY (CAST(:artifacts AS uuid[]))) "
            "LIMIT :cap) AS s ORDER BY score DESC, s.id LIMIT :limit")


def _uuid(value: object) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _hit(chunk_id: object, artifact_id: object, name: str, page: int | None, locator: str, body: str,
         snip: str | None, score: float) -> ChunkHit:
    return ChunkHit(chunk_id=_uuid(chunk_id), artifact_id=_uuid(artifact_id), artifact_name=name, page=page,
                    locator=locator or "", text=body, snippet=highlight(snip or body[:300]), score=score)


def highlight(snippet: str) -> str:
    """Escape a snippet for HTML and turn the engine's markers into <mark> tags."""
    escaped = html.escape(snippet.replace("\n", " "), quote=False)
    return escaped.replace(_START, "<mark>").replace(_STOP, "</mark>")


def rebuild_sqlite_index(session: Session) -> int:
    """Rebuild both SQLite FTS indexes (exact and stemmed) from artifact_chunks (after a restore or VACUUM).

    The keys are the triggers' (FTS_KEY): a project keeps its number, and one without gets the next.
    """
    session.execute(text("INSERT OR IGNORE INTO fts_projects(project_id) "
                         "SELECT DISTINCT project_id FROM artifact_chunks"))
    session.execute(text("DELETE FROM artifact_chunks_fts"))
    session.execute(text(f"INSERT INTO artifact_chunks_fts(rowid, body, chunk_id) "
                         f"SELECT {FTS_KEY}, c.text, c.id FROM artifact_chunks c"))
    session.execute(text("INSERT INTO artifact_chunks_stem(artifact_chunks_stem) VALUES ('delete-all')"))
    session.execute(text(f"INSERT INTO artifact_chunks_stem(rowid, head, body) SELECT {FTS_KEY}, "
                         "substr(c.text, 1, instr(c.text || char(10), char(10)) - 1), c.text FROM artifact_chunks c"))
    return int(session.execute(text("SELECT count(*) FROM artifact_chunks_fts")).scalar_one())
