"""Request and response shapes for questions, answers and the question log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from kap.core.schemas import Strict

MAX_QUESTION_INPUT = 20_000


class HistoryTurn(Strict):
    role: Literal["user", "assistant"]
    content: str = Field(min_length=1, max_length=4000)


class AskCreate(Strict):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_INPUT)
    history: list[HistoryTurn] = Field(default_factory=list, max_length=20)


class Citation(BaseModel):
    n: int
    artifact_id: uuid.UUID
    chunk_id: uuid.UUID
    name: str
    page: int | None
    locator: str
    quote: str
    link: str


class AskRead(BaseModel):
    ok: bool = True
    question_id: uuid.UUID
    answer: str
    mode: Literal["extractive", "llm"]
    retrieval: Literal["fulltext", "hybrid"]
    found: bool
    citations: list[Citation]
    notes: list[str]


class AskLogEntry(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID | None
    actor_label: str
    question: str
    mode: str
    retrieval: str
    found: bool
    chunk_ids: list[uuid.UUID]
    cited_chunk_ids: list[uuid.UUID]
    created_at: datetime


class AskLog(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[AskLogEntry]
