"""Ask routes: a question answered from the project's documents, and the owner's question log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from kap.ask import service
from kap.ask.embeddings import describe
from kap.ask.schemas import AskCreate, AskLog, AskRead
from kap.core.deps import ProjectContext, RuntimeDep, require
from kap.core.permissions import Action
from kap.core.routes import AnswerInThread
from kap.core.runtime import Runtime

router = APIRouter(prefix="/api", tags=["ask"], route_class=AnswerInThread)

AskUse = Annotated[ProjectContext, require(Action.ASK_USE)]
AskAudit = Annotated[ProjectContext, require(Action.ASK_AUDIT)]


@router.post("/ask")
def ask(ctx: AskUse, body: AskCreate, runtime: RuntimeDep) -> AskRead:
    """Answer a question from this project's documents, with numbered citations."""
    return service.ask(ctx, runtime.settings, body)


@router.get("/ask/log")
def ask_log(ctx: AskAudit, limit: Annotated[int, Query(ge=1, le=200)] = 50,
            offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> AskLog:
    """Who asked what, when, and which passages they were shown (owners only)."""
    return service.question_log(ctx, limit=limit, offset=offset)


def install_probe(runtime: Runtime) -> None:
    """Add the `search` readiness probe: full-text only, or hybrid with which embeddings."""
    runtime.probes["search"] = lambda: {**describe(runtime.settings),
                                        "engine": "postgresql" if runtime.db.is_postgres else "sqlite-fts5"}
