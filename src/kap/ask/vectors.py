"""Chunk vectors of one project: coverage, the dense ranking, and filling in missing vectors.

Dense ranking for a project switches to a model only once every chunk of the project
carries a vector of that model: while a model change re-embeds in the background,
answers use full text alone, then swap to hybrid when the job completes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.orm import Session

from kap.ask.embeddings import Embedder, model_tag, pack, top_k
from kap.core.scope import ProjectScope
from kap.documents.models import ArtifactChunk

BATCH = 64
DENSE_POOL = 24


@dataclass(frozen=True)
class Coverage:
    total: int
    embedded: int

    @property
    def complete(self) -> bool:
        return self.total > 0 and self.total == self.embedded


def coverage(session: Session, scope: ProjectScope, tag: str) -> Coverage:
    """How many of the project's chunks carry a vector with this tag."""
    row = session.execute(
        select(func.count(), func.coalesce(func.sum(case((ArtifactChunk.embedding_model == tag, 1), else_=0)), 0))
        .where(ArtifactChunk.project_id == scope.project_id)).one()
    return Coverage(total=int(row[0]), embedded=int(row[1]))


def dense_ids(session: Session, scope: ProjectScope, tag: str, query: Sequence[float],
              k: int = DENSE_POOL) -> list[uuid.UUID]:
    """The project's chunk ids nearest to the query vector (only vectors with the query's tag)."""
    rows = session.execute(select(ArtifactChunk.id, ArtifactChunk.embedding)
                           .where(ArtifactChunk.project_id == scope.project_id, ArtifactChunk.embedding_model == tag,
                                  ArtifactChunk.embedding.is_not(None))).all()
    return [cid for cid, _ in top_k(query, [(r[0], r[1]) for r in rows if r[1] is not None], k)]


def embed_pending(session: Session, scope: ProjectScope, embedder: Embedder, batch: int = BATCH) -> int:
    """Give one batch of the project's chunks a vector from `embedder`; return how many were done."""
    rows = session.execute(select(ArtifactChunk.id, ArtifactChunk.text)
                           .where(ArtifactChunk.project_id == scope.project_id,
                                  or_(ArtifactChunk.embedding_model.is_(None),
                                      ArtifactChunk.embedding_model.not_like(_prefix(embedder), escape="\\")))
                           .order_by(ArtifactChunk.id).limit(batch)).all()
    if not rows:
        return 0
    vectors = embedder.embed([body[:4000] for _, body in rows])
    tag = model_tag(embedder.name, len(vectors[0]))
    for (chunk_id, _), vector in zip(rows, vectors, strict=True):
        session.execute(update(ArtifactChunk).where(ArtifactChunk.id == chunk_id,
                                                    ArtifactChunk.project_id == scope.project_id)
                        .values(embedding=pack(vector), embedding_model=tag))
    return len(rows)


def projects_pending(session: Session, embedder: Embedder) -> list[uuid.UUID]:
    """Projects that have chunks without a vector of this embedder (service use)."""
    rows = session.scalars(select(ArtifactChunk.project_id)
                           .where(or_(ArtifactChunk.embedding_model.is_(None),
                                      ArtifactChunk.embedding_model.not_like(_prefix(embedder), escape="\\")))
                           .distinct()).all()
    return list(rows)


def _prefix(embedder: Embedder) -> str:
    escaped = embedder.name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}#%"
