"""Ask jobs: give a project's chunks vectors of the configured embedding model.

Runs as trusted service work in short transactions, one batch each, so a long
re-embedding never holds a transaction open and answers keep working meanwhile.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import text

from kap.ask.embeddings import EmbeddingsUnavailable, configured_embedder
from kap.ask.vectors import embed_pending, projects_pending
from kap.core.jobs import current_runtime, periodic, task
from kap.core.scope import trusted_scope

log = logging.getLogger("kap.ask.jobs")
MAX_BATCHES = 10_000


@task(retries=2, retry_delay=60)
def embed_project(project_id: str) -> None:
    """Embed every chunk of a project that lacks a vector of the configured model."""
    runtime = current_runtime()
    embedder = configured_embedder(runtime.settings)
    if embedder is None:
        return
    pid = uuid.UUID(project_id)
    for _ in range(MAX_BATCHES):
        with runtime.db.service_transaction() as session:
            scope = trusted_scope(session, pid, purpose="ask-embed")
            if scope is None or embed_pending(session, scope, embedder) == 0:
                return


@periodic("*/10 * * * *")
def embed_all_pending() -> None:
    """Catch up on chunks written since the last run (new uploads, re-ingests, a model change)."""
    runtime = current_runtime()
    embedder = configured_embedder(runtime.settings)
    if embedder is None:
        return
    with runtime.db.service_transaction() as session:
        pending = projects_pending(session, embedder)
    for pid in pending:
        try:
            embed_project.call_local(str(pid))
        except EmbeddingsUnavailable:
            log.warning("embeddings unavailable; project %s stays full-text only for now", pid)
            return


# Projects whose term counts (ask_0003) hold more than two rows a word: every write statement adds rows.
FRAGMENTED = ("SELECT project_id FROM ask_term_counts GROUP BY project_id "
              "HAVING count(*) > 2 * count(DISTINCT lexeme)")


@periodic("41 * * * *")
def compact_term_counts() -> None:
    """Fold the term counts of projects written to since into one row a word (PostgreSQL), one project at a time."""
    runtime = current_runtime()
    if not runtime.db.is_postgres:
        return
    with runtime.db.service_transaction() as session:
        projects = list(session.scalars(text(FRAGMENTED)))
    for pid in projects:
        with runtime.db.service_transaction() as session:
            session.execute(text("SELECT kap_compact_term_counts(:p)"), {"p": pid})
