"""Ask Kap: answer a question from the project's own documents, cite, and log it. Never commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select

from kap.ask import extractive, llm
from kap.ask.models import AskQuestion
from kap.ask.query import Question, parse_question
from kap.ask.retrieval import Candidate, Retrieved, has_documents, retrieve, schedule_embedding
from kap.ask.schemas import AskCreate, AskLog, AskLogEntry, AskRead, Citation
from kap.core.deps import ProjectContext
from kap.core.settings import Settings
from kap.documents.schemas import deep_link
from kap.raid.service import answer_from_log

MAX_QUESTION_CHARS = 1000
LLM_CONTEXT_CHUNKS = 6
FOLLOW_UP_TERMS = 2
NOT_FOUND = "I could not find this in this project's documents."
NO_DOCUMENTS = "This project has no documents yet. Upload documents, then ask again."
NO_WORDS = "I could not find this in this project's documents: the question has no searchable words."


@dataclass
class Outcome:
    """What is shown for one question."""

    answer: str
    mode: str
    found: bool
    citations: list[Citation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def clip_question(text: str) -> tuple[str, list[str]]:
    """The question cut to MAX_QUESTION_CHARS, with a note when it was cut."""
    text = " ".join(text.split())
    if len(text) <= MAX_QUESTION_CHARS:
        return text, []
    return text[:MAX_QUESTION_CHARS], [f"The question was cut to its first {MAX_QUESTION_CHARS} characters."]


def ask(ctx: ProjectContext, settings: Settings, body: AskCreate) -> AskRead:
    """Answer a question from the project's documents only, cite each fact and log what was shown."""
    text, notes = clip_question(body.question)
    history = [(t.role, t.content) for t in body.history]
    question = with_context(parse_question(text), history)
    retrieved = Retrieved(candidates=[], scores={})
    outcome = from_raid_log(ctx, text)
    if outcome is None:
        if question.terms:
            retrieved = retrieve(ctx, settings, question)
        outcome = answer(ctx, settings, question, retrieved, history)
    outcome.notes = notes + retrieved.notes + outcome.notes
    if retrieved.needs_embedding:
        schedule_embedding(ctx)
    entry = log_question(ctx, text, outcome, retrieved)
    return AskRead(question_id=entry.id, answer=outcome.answer, mode=outcome.mode,
                   retrieval=retrieved.retrieval, found=outcome.found,
                   citations=[c.model_copy(update={"link": deep_link(ctx.project_id, c.artifact_id, c.page)})
                              for c in outcome.citations], notes=outcome.notes)


def from_raid_log(ctx: ProjectContext, text: str) -> Outcome | None:
    """ "Who owns A-07?", "What are the open risks?": answered from the RAID log, citing each item's source."""
    logged = answer_from_log(ctx, text)
    if logged is None:
        return None
    citations = [Citation(n=n, artifact_id=c.artifact_id, chunk_id=c.chunk_id, name=c.name, page=c.page,
                          locator=c.locator, quote=c.quote, link="") for n, c in enumerate(logged.citations, start=1)]
    return Outcome(logged.answer, "extractive", True, citations)


def with_context(question: Question, history: Sequence[tuple[str, str]]) -> Question:
    """Borrow the terms of the last user turn when a follow-up says too little on its own ("and who owns it?")."""
    if len(question.terms) >= FOLLOW_UP_TERMS:
        return question
    previous = next((content for role, content in reversed(history) if role == "user"), None)
    if previous is None:
        return question
    merged = parse_question(f"{question.text} {clip_question(previous)[0]}")
    return Question(text=question.text, terms=merged.terms, expect=question.expect, focus=question.focus)


def answer(ctx: ProjectContext, settings: Settings, question: Question, retrieved: Retrieved,
           history: Sequence[tuple[str, str]]) -> Outcome:
    """Pick the answering mode: nothing to go on, a chat model, or extractive."""
    if not question.terms:
        return Outcome(NO_WORDS, "extractive", False)
    if not retrieved.candidates:
        return Outcome(NOT_FOUND if has_documents(ctx) else NO_DOCUMENTS, "extractive", False)
    if llm.enabled(settings):
        return llm_answer(ctx, settings, question, retrieved, history)
    return extractive_answer(question, retrieved)


def _citation(n: int, candidate: Candidate, quote: str) -> Citation:
    return Citation(n=n, artifact_id=candidate.artifact_id, chunk_id=candidate.chunk_id, name=candidate.name,
                    page=candidate.page, locator=candidate.locator, quote=quote, link="")


def _where(candidate: Candidate) -> str:
    if candidate.locator:
        return f"{candidate.name}, {candidate.locator}"
    return f"{candidate.name}, page {candidate.page}" if candidate.page else candidate.name


def extractive_answer(question: Question, retrieved: Retrieved) -> Outcome:
    """Quote the best supporting sentences and cite each; refuse when the evidence is weak."""
    evidence = extractive.best_evidence(question, retrieved.candidates, retrieved.scores, retrieved.frequencies)
    quotes = extractive.pick_quotes(question, evidence)
    if not quotes:
        return Outcome(NOT_FOUND, "extractive", False)
    lines, citations = [], []
    for n, item in enumerate(quotes, start=1):
        quote = extractive.trim_quote(item.sentence, question)
        lead = "According to" if n == 1 else "Also,"
        lines.append(f'{lead} {_where(item.candidate)}: "{quote}" [{n}]')
        citations.append(_citation(n, item.candidate, quote))
    return Outcome("\n".join(lines), "extractive", True, citations)


def llm_answer(ctx: ProjectContext, settings: Settings, question: Question, retrieved: Retrieved,
               history: Sequence[tuple[str, str]]) -> Outcome:
    """Ask the chat model over the scoped chunks; fall back to extractive on any failure."""
    chunks = context_chunks(question, retrieved)
    release_snapshot(ctx)
    try:
        reply = llm.complete(settings, llm.build_messages(question.text, chunks, history))
    except llm.ModelUnavailable as exc:
        outcome = extractive_answer(question, retrieved)
        outcome.notes.append(f"The language model did not answer ({exc.reason}); "
                             "this answer was extracted from the documents instead.")
        return outcome
    parsed = llm.parse_reply(reply, len(chunks))
    if parsed.not_found:
        return Outcome(NOT_FOUND, "llm", False)
    if not parsed.cited:
        return Outcome(NOT_FOUND, "llm", False,
                       notes=["The model's answer cited none of this project's documents, so it is not shown."])
    notes = [f"Dropped citation numbers that match no retrieved passage: {parsed.dropped}."] if parsed.dropped else []
    citations = [_citation(n, chunks[n - 1], best_quote(question, chunks[n - 1])) for n in parsed.cited]
    return Outcome(parsed.text, "llm", True, citations, notes)


def context_chunks(question: Question, retrieved: Retrieved) -> list[Candidate]:
    """The chunks sent to the model: those holding the best answer units first, then retrieval order."""
    evidence = extractive.best_evidence(question, retrieved.candidates, retrieved.scores, retrieved.frequencies)
    ordered = list(dict.fromkeys([e.candidate for e in evidence] + list(retrieved.candidates)))
    return ordered[:LLM_CONTEXT_CHUNKS]


def best_quote(question: Question, candidate: Candidate) -> str:
    """The sentence of a cited chunk that best matches the question."""
    evidence = extractive.best_evidence(question, [candidate], {candidate.chunk_id: 1.0})
    sentence = evidence[0].sentence if evidence else (extractive.sentences(candidate.text) or [candidate.text])[0]
    return extractive.trim_quote(sentence, question)


def release_snapshot(ctx: ProjectContext) -> None:
    """End a read-only transaction before a slow model call; the log write opens a fresh one."""
    session = ctx.session
    if not (session.new or session.dirty or session.deleted):
        session.rollback()


def log_question(ctx: ProjectContext, text: str, outcome: Outcome, retrieved: Retrieved) -> AskQuestion:
    """Record who asked what and which chunks were shown, with an audit event."""
    entry = AskQuestion(org_id=ctx.org_id, project_id=ctx.project_id, user_id=ctx.user_id,
                        actor_label=ctx.identity.label[:320], question=text, mode=outcome.mode,
                        retrieval=retrieved.retrieval, found=outcome.found,
                        chunk_ids=[str(c.chunk_id) for c in retrieved.candidates],
                        cited_chunk_ids=[str(c.chunk_id) for c in outcome.citations])
    ctx.session.add(entry)
    ctx.session.flush()
    ctx.audit("ask.asked", "question", entry.id, found=outcome.found, mode=outcome.mode,
              chunks=len(entry.chunk_ids))
    return entry


def question_log(ctx: ProjectContext, *, limit: int = 50, offset: int = 0) -> AskLog:
    """A page of the project's question log, newest first."""
    stmt = select(AskQuestion).where(AskQuestion.project_id == ctx.project_id)
    total = ctx.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = ctx.session.scalars(stmt.order_by(AskQuestion.created_at.desc(), AskQuestion.id)
                               .limit(limit).offset(offset))
    items = [AskLogEntry(id=r.id, user_id=r.user_id, actor_label=r.actor_label, question=r.question, mode=r.mode,
                         retrieval=r.retrieval, found=r.found, chunk_ids=list(r.chunk_ids or []),
                         cited_chunk_ids=list(r.cited_chunk_ids or []), created_at=r.created_at) for r in rows]
    return AskLog(total=total, limit=limit, offset=offset, items=items)
