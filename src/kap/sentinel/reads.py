"""The reads the sentinel runs: each domain's real service read, with the caller's context.

Every probe calls a service read function exactly as the routes do, in the caller's own
project, and says what came back: ids (or user ids, emails) of one model's column, or a
rendered text. The sentinel then asks, through the service engine, whether any of it
belongs to the target project and not to the caller's — a read whose project filter is
broken hands back the target's rows and the sentinel says `"leak": true`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session

from kap.ask.models import AskQuestion
from kap.ask.service import question_log
from kap.backups.models import RestoreActivity
from kap.backups.service import restore_activity
from kap.comms.models import Subscription
from kap.comms.service import get_subscriptions, preview
from kap.core.deps import ProjectContext
from kap.core.models import Project, ProjectMember
from kap.documents import service as documents
from kap.documents.models import Artifact, ArtifactChunk
from kap.documents.search import search_chunks
from kap.projects.service import list_members, list_projects
from kap.raid import service as raid
from kap.raid.models import RaidChange, RaidComment, RaidItem
from kap.stages.models import SignoffRequest, Stage, StageSigner
from kap.stages.service import list_stages
from kap.stages.signoff import list_requests, list_signers


@dataclass(frozen=True)
class Returned:
    """Values of one column that a read handed back."""

    column: InstrumentedAttribute[Any]
    values: frozenset[Any]


@dataclass(frozen=True)
class Rendered:
    """Text a read rendered; it must not name any of the target's rows in these columns."""

    text: str
    columns: tuple[InstrumentedAttribute[Any], ...]


@dataclass(frozen=True)
class Probe:
    name: str
    run: Callable[[ProjectContext, Hints], Iterable[Returned | Rendered]]


@dataclass
class Hints:
    """Words taken from the target's own rows, so a search probe asks for what is there to leak."""

    words: list[str] = field(default_factory=list)


def _ids(column: InstrumentedAttribute[Any], values: Iterable[Any]) -> Returned:
    return Returned(column, frozenset(v for v in values if v is not None))


def _documents(ctx: ProjectContext, _: Hints) -> Iterable[Returned]:
    listed = documents.list_documents(ctx, limit=200, offset=0)
    yield _ids(Artifact.id, (d.id for d in listed.documents))


def _ocr(ctx: ProjectContext, _: Hints) -> Iterable[Returned]:
    yield _ids(Artifact.id, (d.id for d in documents.ocr_queue(ctx).documents))


def _search(ctx: ProjectContext, hints: Hints) -> Iterable[Returned]:
    for word in hints.words:
        hits = search_chunks(ctx, word, 50, match="any")
        yield _ids(ArtifactChunk.id, (h.chunk_id for h in hits))
        yield _ids(Artifact.id, (h.artifact_id for h in hits))


def _stages(ctx: ProjectContext, _: Hints) -> Iterable[Returned]:
    stages = list_stages(ctx)
    yield _ids(Stage.id, (s.id for s in stages))
    yield _ids(Artifact.id, (a.id for s in stages for a in s.artifacts))
    yield _ids(SignoffRequest.id, (s.latest_request.id for s in stages if s.latest_request))
    for stage in stages:
        yield _ids(SignoffRequest.id, (r.id for r in list_requests(ctx, stage.id)))


def _signers(ctx: ProjectContext, _: Hints) -> Iterable[Returned]:
    yield _ids(StageSigner.user_id, (s.user_id for s in list_signers(ctx)))


def _members(ctx: ProjectContext, _: Hints) -> Iterable[Returned]:
    yield _ids(ProjectMember.user_id, (m.user_id for m in list_members(ctx)))


def _projects(ctx: ProjectContext, _: Hints) -> Iterable[Returned]:
    yield _ids(Project.id, (p.id for p in list_projects(ctx.session, ctx.identity, include_archived=True)))


def _ask_log(ctx: ProjectContext, _: Hints) -> Iterable[Returned]:
    yield _ids(AskQuestion.id, (q.id for q in question_log(ctx, limit=200).items))


def _restores(ctx: ProjectContext, _: Hints) -> Iterable[Returned]:
    yield _ids(RestoreActivity.id, (r.id for r in restore_activity(ctx.session, ctx.scope, limit=200)))


def _raid(ctx: ProjectContext, _: Hints) -> Iterable[Returned]:
    found = raid.list_items(ctx)
    yield _ids(RaidItem.id, (i.id for i in found))
    yield _ids(Artifact.id, (i.source.artifact_id for i in found))
    for item in found:
        yield _ids(RaidComment.id, (c.id for c in raid.list_comments(ctx, item.id)))
        yield _ids(RaidChange.id, (c.id for c in raid.list_changes(ctx, item.id)))


def _subscriptions(ctx: ProjectContext, _: Hints) -> Iterable[Returned]:
    read = get_subscriptions(ctx)
    yield _ids(Subscription.email, (e.email for e in read.external or []))


def _digest(ctx: ProjectContext, _: Hints) -> Iterable[Rendered]:
    digest = preview(ctx)
    yield Rendered(digest.text + digest.html, (Artifact.name, Stage.title))


PROBES: list[Probe] = [
    Probe("projects.list", _projects),
    Probe("members.list", _members),
    Probe("documents.list", _documents),
    Probe("documents.ocr_queue", _ocr),
    Probe("documents.search", _search),
    Probe("stages.list", _stages),
    Probe("stages.signers", _signers),
    Probe("ask.log", _ask_log),
    Probe("raid.list", _raid),
    Probe("backups.restore_activity", _restores),
    Probe("comms.subscriptions", _subscriptions),
    Probe("comms.digest_preview", _digest),
]


def target_words(trusted: Session, target: uuid.UUID, limit: int = 5) -> list[str]:
    """A few long words from the target's chunks (empty when it has none, or does not exist)."""
    texts = trusted.scalars(select(ArtifactChunk.text).where(ArtifactChunk.project_id == target).limit(20))
    words: list[str] = []
    for text in texts:
        for word in text.split():
            word = "".join(ch for ch in word if ch.isalnum())
            if len(word) >= 8 and word.lower() not in words:
                words.append(word.lower())
    return words[:limit]


def _project_column(column: InstrumentedAttribute[Any]) -> Any:
    table = column.class_
    return table.id if table is Project else table.project_id


def leaked(trusted: Session, found: Returned | Rendered, own: uuid.UUID, target: uuid.UUID) -> int:
    """How many of a read's results are the target's and not the caller's own project's."""
    if isinstance(found, Rendered):
        count = 0
        for column in found.columns:
            names = trusted.scalars(select(column).where(_project_column(column) == target).distinct())
            count += sum(1 for name in names if name and len(name) >= 4 and name in found.text)
        return count
    if not found.values:
        return 0
    key = _project_column(found.column)
    values = list(found.values)
    theirs = set(trusted.scalars(select(found.column).where(found.column.in_(values), key == target)))
    if not theirs:
        return 0
    mine = set(trusted.scalars(select(found.column).where(found.column.in_(list(theirs)), key == own)))
    return len(theirs - mine)

