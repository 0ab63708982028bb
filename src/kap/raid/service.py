"""The RAID log of a project: the rules, never the commit.

People's work goes through a ProjectContext; the extraction job writes proposals for
one artifact it has looked up by id (`record_proposals`), inside that artifact's project.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from kap.core.db import utcnow
from kap.core.deps import ProjectContext
from kap.core.errors import Conflict, NotFound, ValidationFailed
from kap.core.links import document_link
from kap.core.mail import one_line
from kap.core.models import User
from kap.core.permissions import Action
from kap.core.scope import ProjectScope
from kap.documents.models import Artifact, ArtifactChunk
from kap.raid.extract import Proposal, fingerprint
from kap.raid.models import OPEN_STATUSES, RaidChange, RaidComment, RaidItem
from kap.raid.schemas import (
    ChangeRead,
    CommentCreate,
    CommentRead,
    RaidItemCreate,
    RaidItemRead,
    RaidItemUpdate,
    SourceRead,
)

EDITABLE = ("kind", "ref", "title", "details", "owner", "due", "status", "severity")
CSV_COLUMNS = ("ref", "kind", "title", "owner", "due", "status", "severity", "state", "details", "source_document",
               "source_locator", "source_quote", "id")


def is_overdue(item: RaidItem, today: date | None = None) -> bool:
    return (item.due is not None and item.status in OPEN_STATUSES and item.state != "dismissed"
            and item.due < (today or date.today()))


def _names(session: Session, scope: ProjectScope, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(select(Artifact.id, Artifact.name).where(Artifact.project_id == scope.project_id,
                                                                     Artifact.id.in_(wanted)))
    return {row.id: row.name for row in rows}


def _reads(session: Session, scope: ProjectScope, items: list[RaidItem]) -> list[RaidItemRead]:
    names = _names(session, scope, (i.source_artifact_id for i in items))
    today = date.today()
    return [RaidItemRead(
        id=i.id, project_id=i.project_id, kind=i.kind, ref=i.ref, title=i.title, details=i.details, owner=i.owner,
        due=i.due, status=i.status, severity=i.severity, state=i.state, origin=i.origin,
        overdue=is_overdue(i, today), created_at=i.created_at, updated_at=i.updated_at, reviewed_at=i.reviewed_at,
        source=SourceRead(artifact_id=i.source_artifact_id, artifact_name=names.get(i.source_artifact_id)
                          if i.source_artifact_id else None, page=i.source_page, locator=i.source_locator,
                          quote=i.source_quote,
                          link=document_link(i.project_id, i.source_artifact_id, i.source_page)
                          if i.source_artifact_id else None))
        for i in items]


def item_read(ctx: ProjectContext, item: RaidItem) -> RaidItemRead:
    return _reads(ctx.session, ctx.scope, [item])[0]


ORDER = (RaidItem.kind, RaidItem.ref.is_(None), RaidItem.ref, RaidItem.created_at, RaidItem.id)


def list_items(ctx: ProjectContext, *, kind: str | None = None, status: str | None = None,
               owner: str | None = None, state: str | None = None, overdue: bool | None = None,
               q: str | None = None) -> list[RaidItemRead]:
    """The project's items, filtered; owner and q match case-insensitively anywhere."""
    stmt = select(RaidItem).where(RaidItem.project_id == ctx.project_id)
    if kind:
        stmt = stmt.where(RaidItem.kind == kind)
    if status == "open_any":
        stmt = stmt.where(RaidItem.status.in_(OPEN_STATUSES))
    elif status:
        stmt = stmt.where(RaidItem.status == status)
    if state:
        stmt = stmt.where(RaidItem.state == state)
    if owner:
        stmt = stmt.where(func.lower(RaidItem.owner).contains(owner.strip().lower(), autoescape=True))
    if q:
        needle = q.strip().lower()
        stmt = stmt.where(or_(func.lower(RaidItem.title).contains(needle, autoescape=True),
                              func.lower(RaidItem.ref).contains(needle, autoescape=True)))
    if overdue:
        stmt = stmt.where(RaidItem.due < date.today(), RaidItem.status.in_(OPEN_STATUSES))
    items = list(ctx.session.scalars(stmt.order_by(*ORDER)))
    return _reads(ctx.session, ctx.scope, items)


def find_item(ctx: ProjectContext, item_id: uuid.UUID) -> RaidItem:
    """An item of the caller's project, or the one 404."""
    item = ctx.session.scalar(select(RaidItem).where(RaidItem.id == item_id, RaidItem.project_id == ctx.project_id))
    if item is None:
        raise NotFound("RAID item not found", code="raid_item_not_found")
    return item


def _taken(session: Session, scope: ProjectScope, fp: str, except_id: uuid.UUID | None = None) -> bool:
    stmt = select(RaidItem.id).where(RaidItem.project_id == scope.project_id, RaidItem.fingerprint == fp)
    if except_id is not None:
        stmt = stmt.where(RaidItem.id != except_id)
    return session.scalar(stmt.limit(1)) is not None


def create_item(ctx: ProjectContext, body: RaidItemCreate) -> RaidItemRead:
    """Add an item by hand; it is in the log at once."""
    ref = body.ref.upper() if body.ref else None
    fp = fingerprint(body.kind, ref, body.title) if ref else f"manual:{uuid.uuid4().hex}"
    if ref and _taken(ctx.session, ctx.scope, fp):
        raise Conflict(f"an item with reference {ref} exists", code="raid_ref_taken")
    item = RaidItem(org_id=ctx.org_id, project_id=ctx.project_id, kind=body.kind, ref=ref, fingerprint=fp,
                    title=body.title, details=body.details, owner=body.owner or None, due=body.due,
                    status=body.status, severity=body.severity, state="accepted", origin="manual",
                    created_by=ctx.user_id, reviewed_by=ctx.user_id, reviewed_at=utcnow())
    ctx.session.add(item)
    ctx.session.flush()
    _change(ctx.session, item, "edit", {"created": [None, item.kind]}, actor=ctx)
    ctx.audit("raid.create", "raid_item", item.id, kind=item.kind, ref=item.ref)
    return item_read(ctx, item)


def _change(session: Session, item: RaidItem, origin: str, changes: dict[str, Any], *,
            actor: ProjectContext | None = None, artifact_id: uuid.UUID | None = None) -> None:
    session.add(RaidChange(org_id=item.org_id, project_id=item.project_id, item_id=item.id, origin=origin,
                           artifact_id=artifact_id, actor_id=actor.user_id if actor else None,
                           actor_label=actor.identity.label if actor else "", changes=changes))


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _apply(item: RaidItem, values: dict[str, Any]) -> dict[str, list[Any]]:
    changed: dict[str, list[Any]] = {}
    for name, value in values.items():
        old = getattr(item, name)
        if old != value:
            changed[name] = [_jsonable(old), _jsonable(value)]
            setattr(item, name, value)
    return changed


def update_item(ctx: ProjectContext, item_id: uuid.UUID, body: RaidItemUpdate) -> RaidItemRead:
    """Edit an item; what changed is recorded with who changed it."""
    item = find_item(ctx, item_id)
    values = body.model_dump(exclude_unset=True)
    if "title" in values and values["title"] is None:
        raise ValidationFailed("title cannot be empty", code="validation_error")
    if "kind" in values and values["kind"] is None:
        raise ValidationFailed("kind cannot be empty", code="validation_error")
    if values.get("ref"):
        values["ref"] = values["ref"].upper()
    if "owner" in values:
        values["owner"] = values["owner"] or None
    if "details" in values:
        values["details"] = values["details"] or ""  # null clears the details, as an empty string does
    if "status" in values and values["status"] is None:
        values.pop("status")
    changed = _apply(item, values)
    if "ref" in changed:
        fp = fingerprint(item.kind, item.ref, item.title) if item.ref else f"manual:{item.id.hex}"
        if _taken(ctx.session, ctx.scope, fp, except_id=item.id):
            raise Conflict(f"an item with reference {item.ref} exists", code="raid_ref_taken")
        item.fingerprint = fp
    if changed:
        item.updated_at = utcnow()
        _change(ctx.session, item, "edit", changed, actor=ctx)
        ctx.audit("raid.update", "raid_item", item.id, fields=sorted(changed))
    return item_read(ctx, item)


def set_state(ctx: ProjectContext, item_id: uuid.UUID, state: str) -> RaidItemRead:
    """Accept an item into the log, or dismiss it."""
    item = find_item(ctx, item_id)
    if item.state != state:
        _change(ctx.session, item, "review", {"state": [item.state, state]}, actor=ctx)
        item.state, item.reviewed_by, item.reviewed_at = state, ctx.user_id, utcnow()
        item.updated_at = utcnow()
        ctx.audit(f"raid.{'accept' if state == 'accepted' else 'dismiss'}", "raid_item", item.id)
    return item_read(ctx, item)


def _people(session: Session, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    """People's names (or e-mail addresses) by user id; a user with neither is 'A project member'."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(select(User.id, User.name, User.email).where(User.id.in_(wanted)))
    return {row.id: row.name or row.email or "A project member" for row in rows}


def add_comment(ctx: ProjectContext, item_id: uuid.UUID, body: CommentCreate) -> CommentRead:
    item = find_item(ctx, item_id)
    comment = RaidComment(org_id=ctx.org_id, project_id=ctx.project_id, item_id=item.id, author_id=ctx.user_id,
                          author_label=ctx.identity.label, body=body.body)
    ctx.session.add(comment)
    ctx.session.flush()
    ctx.audit("raid.comment", "raid_item", item.id)
    author = _people(ctx.session, [ctx.user_id]).get(ctx.user_id) if ctx.user_id else None
    return CommentRead(id=comment.id, item_id=item.id, author=author or "A project member", body=comment.body,
                       created_at=comment.created_at)


def list_comments(ctx: ProjectContext, item_id: uuid.UUID) -> list[CommentRead]:
    item = find_item(ctx, item_id)
    rows = list(ctx.session.scalars(select(RaidComment).where(RaidComment.project_id == ctx.project_id,
                                                              RaidComment.item_id == item.id)
                                    .order_by(RaidComment.created_at, RaidComment.id)))
    names = _people(ctx.session, (c.author_id for c in rows))
    return [CommentRead(id=c.id, item_id=c.item_id, author=names.get(c.author_id, "A former member")
                        if c.author_id else "A former member", body=c.body, created_at=c.created_at) for c in rows]


def list_changes(ctx: ProjectContext, item_id: uuid.UUID) -> list[ChangeRead]:
    item = find_item(ctx, item_id)
    rows = list(ctx.session.scalars(select(RaidChange).where(RaidChange.project_id == ctx.project_id,
                                                             RaidChange.item_id == item.id)
                                    .order_by(RaidChange.created_at.desc(), RaidChange.id)))
    names = _people(ctx.session, (c.actor_id for c in rows))
    return [ChangeRead(id=c.id, origin=c.origin, actor=names.get(c.actor_id, "A former member") if c.actor_id
                       else "A document", artifact_id=c.artifact_id, changes=c.changes, created_at=c.created_at)
            for c in rows]


def export_csv(ctx: ProjectContext, items: list[RaidItemRead]) -> str:
    """The log as CSV, one row per item, with where each came from."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for i in items:
        row = [i.ref or "", i.kind, i.title, i.owner or "", i.due.isoformat() if i.due else "", i.status,
               i.severity or "", i.state, i.details, i.source.artifact_name or "", i.source.locator, i.source.quote,
               str(i.id)]
        # A cell starting with = + - @ would run as a formula in a spreadsheet.
        writer.writerow(["'" + c if c[:1] in ("=", "+", "-", "@") else c for c in row])
    return out.getvalue()


# ---- written by the extraction job ----------------------------------------------------------------

def record_proposals(session: Session, scope: ProjectScope, artifact: Artifact, proposals: list[Proposal],
                     doc_date: date | None) -> dict[str, int]:
    """Store what a document proposes: new items are suggested, known references are updated in place.

    The document ingested last wins, except that a document whose stated date (mail header,
    name, title line) is older than the one an item last came from never rolls it back.
    """
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    if artifact.project_id != scope.project_id:
        raise ValueError("the artifact is not in the scoped project")
    for p in proposals:
        fp = fingerprint(p.kind, p.ref, p.title)
        item = session.scalar(select(RaidItem).where(RaidItem.project_id == scope.project_id,
                                                     RaidItem.fingerprint == fp))
        if item is None:
            item = _new_item(artifact, p, fp, doc_date)
            session.add(item)
            session.flush()
            _change(session, item, "source", {"created": [None, p.kind]}, artifact_id=artifact.id)
            counts["created"] += 1
            continue
        same_source = item.source_artifact_id == artifact.id
        if not same_source and item.source_date and doc_date and doc_date < item.source_date:
            counts["unchanged"] += 1
            continue
        changed = _apply(item, _proposal_values(p))
        _apply(item, {"source_artifact_id": artifact.id, "source_page": p.page, "source_locator": p.locator[:200],
                      "source_quote": p.quote, "source_date": doc_date})
        if changed:
            item.updated_at = utcnow()
            _change(session, item, "source", changed, artifact_id=artifact.id)
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
    return counts


def _proposal_values(p: Proposal) -> dict[str, Any]:
    values: dict[str, Any] = {"kind": p.kind, "title": p.title, "status": p.status}
    for name in ("owner", "due", "severity"):
        if getattr(p, name) is not None:
            values[name] = getattr(p, name)
    if p.details:
        values["details"] = p.details
    return values


def _new_item(artifact: Artifact, p: Proposal, fp: str, doc_date: date | None) -> RaidItem:
    return RaidItem(org_id=artifact.org_id, project_id=artifact.project_id, kind=p.kind, ref=p.ref, fingerprint=fp,
                    title=p.title, details=p.details, owner=p.owner, due=p.due, status=p.status,
                    severity=p.severity, state="suggested", origin="extracted", source_artifact_id=artifact.id,
                    source_page=p.page, source_locator=p.locator[:200], source_quote=p.quote, source_date=doc_date)


# ---- the weekly digest ------------------------------------------------------------------------------
# Only items accepted into the log count; suggestions wait for a person first.

@dataclass
class DigestLine:
    item: RaidItem
    note: str


def _accepted(scope: ProjectScope) -> Any:
    return select(RaidItem).where(RaidItem.project_id == scope.project_id, RaidItem.state == "accepted")


def actions_due(session: Session, scope: ProjectScope, end: datetime) -> tuple[list[DigestLine], list[DigestLine]]:
    """Open actions overdue at the period's end, and those due in the week after it."""
    today = end.date()
    actions = list(session.scalars(_accepted(scope).where(
        RaidItem.kind == "action", RaidItem.status.in_(OPEN_STATUSES), RaidItem.due.is_not(None),
        RaidItem.due < today + timedelta(days=7)).order_by(RaidItem.due, RaidItem.id)))
    overdue = [DigestLine(i, f"{i.owner or 'no owner'} · overdue since {i.due:%d %b}")
               for i in actions if i.due and i.due < today]
    due = [DigestLine(i, f"{i.owner or 'no owner'} · due {i.due:%d %b}") for i in actions if i.due and i.due >= today]
    return overdue, due


def _change_note(changes: list[RaidChange]) -> str:
    fields: dict[str, list[Any]] = {}
    for change in sorted(changes, key=lambda c: c.created_at):
        for name, (old, new) in change.changes.items():
            if name in ("created", "state"):
                continue
            fields[name] = [fields[name][0] if name in fields else old, new]
    parts = [f"{name} {old or '—'} → {new or '—'}" for name, (old, new) in fields.items() if old != new]
    return "changed: " + ", ".join(parts).replace("_", " ") if parts else ""


def risks_and_issues_changed(session: Session, scope: ProjectScope, start: datetime,
                             end: datetime) -> list[DigestLine]:
    """Risks and issues that are new in the period, or whose fields changed in it (and how)."""
    changes = list(session.scalars(select(RaidChange).where(
        RaidChange.project_id == scope.project_id, RaidChange.created_at >= start, RaidChange.created_at < end)))
    by_item: dict[uuid.UUID, list[RaidChange]] = {}
    for change in changes:
        by_item.setdefault(change.item_id, []).append(change)
    lines = []
    for item in session.scalars(_accepted(scope).where(RaidItem.kind.in_(("risk", "issue")))
                                .order_by(RaidItem.kind, RaidItem.ref, RaidItem.id)):
        note = "new" if start <= item.created_at < end else _change_note(by_item.get(item.id, []))
        if note:
            kind = "Risk" if item.kind == "risk" else "Issue"
            lines.append(DigestLine(item, " · ".join(x for x in (kind, note, item.severity, item.status) if x)))
    return lines


def decisions_between(session: Session, scope: ProjectScope, start: datetime, end: datetime) -> list[DigestLine]:
    """Decisions taken into the log during the period."""
    return [DigestLine(i, i.status) for i in session.scalars(_accepted(scope).where(
        RaidItem.kind == "decision", RaidItem.reviewed_at >= start, RaidItem.reviewed_at < end)
        .order_by(RaidItem.ref, RaidItem.id))]


def comments_between(session: Session, scope: ProjectScope, start: datetime, end: datetime) -> list[DigestLine]:
    """Comments on the log's items during the period, newest first, with who wrote them."""
    rows = session.execute(select(RaidComment, RaidItem).join(RaidItem, RaidItem.id == RaidComment.item_id).where(
        RaidComment.project_id == scope.project_id, RaidItem.project_id == scope.project_id,
        RaidItem.state == "accepted", RaidComment.created_at >= start, RaidComment.created_at < end)
        .order_by(RaidComment.created_at.desc(), RaidComment.id)).all()
    names = _people(session, (c.author_id for c, _ in rows))
    return [DigestLine(item, f"{names.get(c.author_id, 'A project member') if c.author_id else 'A former member'}"
                             f": {one_line(c.body)[:140]}") for c, item in rows]


# ---- answers from the log ----------------------------------------------------------------------------

@dataclass
class LogCitation:
    artifact_id: uuid.UUID
    chunk_id: uuid.UUID
    name: str
    page: int | None
    locator: str
    quote: str


@dataclass
class LogAnswer:
    answer: str
    citations: list[LogCitation]


QUESTION_REF = re.compile(r"\b([A-Za-z]{1,4})-?(\d{1,4})\b")
OWNER_QUESTION = re.compile(r"\b(?:who|owner|owns|responsible|assigned)\b", re.IGNORECASE)
KIND_WORDS = {"risk": "risk", "risks": "risk", "issue": "issue", "issues": "issue", "action": "action",
              "actions": "action", "decision": "decision", "decisions": "decision"}
LIST_CUE = re.compile(r"\b(?:what|which|list|show|open|overdue|any)\b", re.IGNORECASE)
MAX_LISTED = 10


def _cite(ctx: ProjectContext, item: RaidItem, names: dict[uuid.UUID, str]) -> LogCitation | None:
    """The chunk of the item's document that holds its quote."""
    if item.source_artifact_id is None or not item.source_quote:
        return None
    chunks = ctx.session.execute(select(ArtifactChunk.id, ArtifactChunk.text).where(
        ArtifactChunk.project_id == ctx.project_id, ArtifactChunk.artifact_id == item.source_artifact_id)
        .order_by(ArtifactChunk.seq)).all()
    chunk = next((c for c in chunks if item.source_quote in c.text), None) or (chunks[0] if chunks else None)
    if chunk is None:
        return None
    return LogCitation(artifact_id=item.source_artifact_id, chunk_id=chunk.id,
                       name=names.get(item.source_artifact_id, "document"), page=item.source_page,
                       locator=item.source_locator, quote=item.source_quote)


def _label(item: RaidItem) -> str:
    return f"{item.ref} ({item.title})" if item.ref else item.title


def _facts(item: RaidItem) -> str:
    parts = [f"owner {item.owner}" if item.owner else "no owner", f"due {item.due:%d %b %Y}" if item.due else "",
             item.severity or "", item.status.replace("_", " "),
             "not yet reviewed" if item.state == "suggested" else ""]
    return ", ".join(p for p in parts if p)


def _cited(ctx: ProjectContext, found: list[RaidItem], sentences: list[str]) -> LogAnswer:
    names = _names(ctx.session, ctx.scope, (i.source_artifact_id for i in found))
    citations: list[LogCitation] = []
    text = []
    for item, sentence in zip(found, sentences, strict=True):
        cite = _cite(ctx, item, names)
        if cite is not None:
            citations.append(cite)
            sentence += f" [{len(citations)}]"
        text.append(sentence)
    return LogAnswer(answer=" ".join(text), citations=citations)


def answer_from_log(ctx: ProjectContext, question: str) -> LogAnswer | None:
    """Answer "Who owns A-07?" or "What are the open risks?" from the RAID log, citing each item's source.

    None when the question is not about the log (or the caller may not read it): the caller
    then answers from the documents as usual. Dismissed suggestions are never used.
    """
    if not ctx.allows(Action.RAID_READ):
        return None
    live = select(RaidItem).where(RaidItem.project_id == ctx.project_id, RaidItem.state != "dismissed")
    refs = [f"{a.upper()}-{n}" for a, n in QUESTION_REF.findall(question)]
    if refs:
        found = list(ctx.session.scalars(live.where(RaidItem.ref.in_(refs)).order_by(RaidItem.ref)))
        if not found:
            return None
        if OWNER_QUESTION.search(question):
            sentences = [f"{_label(i)} is owned by {i.owner}." if i.owner else f"{_label(i)} has no owner yet."
                         for i in found]
        else:
            sentences = [f"{_label(i)}: {_facts(i)}." for i in found]
        return _cited(ctx, found, sentences)
    words = re.findall(r"[a-z]+", question.lower())
    kinds = [KIND_WORDS[w] for w in words if w in KIND_WORDS]
    if len(set(kinds)) != 1 or not LIST_CUE.search(question):
        return None
    kind = kinds[0]
    stmt = live.where(RaidItem.kind == kind)
    overdue = "overdue" in words
    if overdue:
        stmt = stmt.where(RaidItem.due < date.today(), RaidItem.status.in_(OPEN_STATUSES))
    elif "open" in words or kind != "decision":
        stmt = stmt.where(RaidItem.status.in_(OPEN_STATUSES))
    found = list(ctx.session.scalars(stmt.order_by(RaidItem.ref.is_(None), RaidItem.ref, RaidItem.created_at)
                                     .limit(MAX_LISTED + 1)))
    plural = {"risk": "risks", "issue": "issues", "action": "actions", "decision": "decisions"}[kind]
    what = f"{'overdue' if overdue else 'open'} {plural}" if kind != "decision" or overdue else plural
    if not found:
        return LogAnswer(answer=f"The RAID log has no {what}.", citations=[])
    more = len(found) > MAX_LISTED
    found = found[:MAX_LISTED]
    answer = _cited(ctx, found, [f"{_label(i)}: {_facts(i)}." for i in found])
    head = f"The RAID log lists {len(found)}{' or more' if more else ''} {what}:"
    return LogAnswer(answer=f"{head} {answer.answer}", citations=answer.citations)
