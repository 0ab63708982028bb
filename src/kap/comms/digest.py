"""The weekly digest: one small section builder per source, rendered to HTML and text.

`build_digest` runs in the recipient's permission context: members read through a
session that acts as them (row-level security on PostgreSQL), external recipients
see only documents the PM marked shareable and no internal stage activity. Every
query filters by the one project, so nothing from another project can appear.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from kap.backups.service import restored_between
from kap.comms.models import CommsSettings
from kap.core.branding import brand_of
from kap.core.errors import NotFound
from kap.core.links import document_link, project_link, stage_link
from kap.core.mail import one_line
from kap.core.models import AuditEvent, Project
from kap.core.scope import ProjectScope
from kap.documents.models import Artifact
from kap.raid import service as raid
from kap.stages.models import SignoffRequest

ITEM_LIMIT = 10
COUNT_KEYS = ("documents_added", "documents_reingested", "ocr_backlog", "stages_moved", "signoffs_requested",
              "signoffs_approved", "signoffs_rejected", "signoffs_overdue", "restores", "raid_actions_overdue",
              "raid_actions_due", "raid_risks_issues", "raid_decisions", "raid_comments")
TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                        autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)


@dataclass(frozen=True)
class Recipient:
    """Who a digest is for: a member (`user:<id>`) or an external address (`email:<addr>`)."""

    key: str
    email: str
    user_id: uuid.UUID | None = None
    name: str | None = None

    @property
    def external(self) -> bool:
        return self.user_id is None

    @property
    def view(self) -> str:
        """What the recipient may see: every member of a project sees the same digest."""
        return "external" if self.external else "member"

    @classmethod
    def member(cls, user_id: uuid.UUID, email: str, name: str | None = None) -> Recipient:
        return cls(key=f"user:{user_id}", email=email, user_id=user_id, name=name)

    @classmethod
    def outside(cls, email: str, name: str | None = None) -> Recipient:
        return cls(key=f"email:{email.lower()}", email=email.lower(), name=name)


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime


@dataclass
class Item:
    title: str
    detail: str = ""
    url: str | None = None


@dataclass
class Section:
    key: str
    title: str
    counts: dict[str, int]
    items: list[Item] = field(default_factory=list)
    more: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title, "counts": self.counts, "more": self.more,
                "items": [{"title": i.title, "detail": i.detail, "url": i.url} for i in self.items]}


@dataclass
class Digest:
    project: dict[str, Any]
    period: Period
    recipient: Recipient
    counts: dict[str, int]
    sections: list[Section]
    subject: str
    html: str
    text: str
    org: str = "Kap"

    def as_dict(self) -> dict[str, Any]:
        """The preview shape the API answers with."""
        return {"project": self.project,
                "period": {"start": self.period.start.isoformat(), "end": self.period.end.isoformat()},
                "recipient": {"email": self.recipient.email, "external": self.recipient.external},
                "counts": self.counts, "sections": [s.as_dict() for s in self.sections],
                "subject": self.subject, "html": self.html, "text": self.text}


@dataclass(frozen=True)
class Source:
    """What every section builder reads from."""

    session: Session
    scope: ProjectScope
    period: Period
    recipient: Recipient
    base_url: str

    @property
    def project_id(self) -> uuid.UUID:
        return self.scope.project_id

    def link(self, path: str) -> str | None:
        """A link into Kap for members; externals cannot sign in, so they get none."""
        return None if self.recipient.external else f"{self.base_url}{path}"


SectionBuilder = Callable[[Source], Section | None]
CacheKey = tuple[uuid.UUID, datetime, datetime, str, str]


class SectionCache:
    """Sections of one (project, period, view), reused for every recipient with that view.

    A project's members all see the same content, so a weekly run builds the sections
    once per project and view and renders them per recipient (links to unsubscribe differ).
    """

    def __init__(self, ttl_seconds: float = 600.0, max_entries: int = 1024) -> None:
        self.ttl, self.max_entries = ttl_seconds, max_entries
        self._data: dict[CacheKey, tuple[float, list[Section]]] = {}
        self._lock = threading.Lock()

    def get_or_build(self, key: CacheKey, build: Callable[[], list[Section]]) -> list[Section]:
        """The cached sections for `key`, built on a miss or once stale."""
        now = time.monotonic()
        with self._lock:
            hit = self._data.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        sections = build()
        with self._lock:
            if len(self._data) >= self.max_entries:
                self._data.clear()
            self._data[key] = (now, sections)
        return sections


def _artifacts(src: Source) -> Select[Any]:
    stmt = select(Artifact).where(Artifact.project_id == src.project_id, Artifact.parent_id.is_(None))
    if src.recipient.external:
        stmt = stmt.where(Artifact.shareable.is_(True))
    return stmt


def _count(src: Source, stmt: Select[Any]) -> int:
    return int(src.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)


def _document_items(src: Source, stmt: Select[Any], detail: Callable[[Artifact], str]) -> list[Item]:
    rows: list[Artifact] = list(src.session.scalars(stmt.limit(ITEM_LIMIT)))
    return [Item(title=a.name, detail=detail(a), url=src.link(document_link(src.project_id, a.id))) for a in rows]


def _section(src: Source, key: str, title: str, stmt: Select[Any],
             detail: Callable[[Artifact], str]) -> Section | None:
    total = _count(src, stmt)
    if not total:
        return None
    items = _document_items(src, stmt, detail)
    return Section(key=key, title=title, counts={key: total}, items=items, more=total - len(items))


def documents_added(src: Source) -> Section | None:
    """Documents uploaded during the period."""
    p = src.period
    stmt = (_artifacts(src).where(Artifact.created_at >= p.start, Artifact.created_at < p.end)
            .order_by(Artifact.created_at.desc(), Artifact.id))
    return _section(src, "documents_added", "Documents added", stmt, lambda a: a.status.replace("_", " "))


def documents_reingested(src: Source) -> Section | None:
    """Existing documents whose text was extracted again during the period."""
    p = src.period
    stmt = (_artifacts(src).where(Artifact.version > 1, Artifact.updated_at >= p.start,
                                  Artifact.updated_at < p.end, Artifact.created_at < p.start)
            .order_by(Artifact.updated_at.desc(), Artifact.id))
    return _section(src, "documents_reingested", "Documents re-ingested", stmt, lambda a: f"version {a.version}")


def ocr_backlog(src: Source) -> Section | None:
    """Documents waiting in the OCR lane now."""
    stmt = _artifacts(src).where(Artifact.status == "needs_ocr").order_by(Artifact.created_at, Artifact.id)
    return _section(src, "ocr_backlog", "Waiting for OCR", stmt, lambda a: "needs OCR")


def stages_moved(src: Source) -> Section | None:
    """Stage status changes during the period (members only: stages are internal)."""
    if src.recipient.external:
        return None
    p = src.period
    stmt = (select(AuditEvent).where(AuditEvent.project_id == src.project_id,
                                     AuditEvent.action == "stage.status_changed",
                                     AuditEvent.created_at >= p.start, AuditEvent.created_at < p.end)
            .order_by(AuditEvent.created_at.desc(), AuditEvent.id))
    total = _count(src, stmt)
    if not total:
        return None
    events = src.session.scalars(stmt.limit(ITEM_LIMIT)).all()
    items = [Item(title=str(e.details.get("title", "stage")),
                  detail=f"{e.details.get('from', '?')} → {e.details.get('to', '?')}".replace("_", " "),
                  url=src.link(stage_link(src.project_id, e.target_id))) for e in events]
    return Section(key="stages_moved", title="Stages moved", counts={"stages_moved": total}, items=items,
                   more=total - len(items))


def signoffs(src: Source) -> Section | None:
    """Sign-off requests sent, approved, rejected or overdue during the period (members only)."""
    if src.recipient.external:
        return None
    counts = _signoff_counts(src)
    if not any(counts.values()):
        return None
    labels = {"signoffs_requested": "requested", "signoffs_approved": "approved",
              "signoffs_rejected": "rejected", "signoffs_overdue": "overdue"}
    items = [Item(title=f"{n} {labels[k]}", url=src.link(stage_link(src.project_id))) for k, n in counts.items() if n]
    return Section(key="signoffs", title="Sign-offs", counts=counts, items=items)


def _signoff_counts(src: Source) -> dict[str, int]:
    p, req = src.period, SignoffRequest
    base = select(req.id).where(req.project_id == src.project_id)
    decided = base.where(req.decided_at >= p.start, req.decided_at < p.end)
    return {
        "signoffs_requested": _count(src, base.where(req.created_at >= p.start, req.created_at < p.end)),
        "signoffs_approved": _count(src, decided.where(req.status == "approved")),
        "signoffs_rejected": _count(src, decided.where(req.status == "rejected")),
        "signoffs_overdue": _count(src, base.where(req.status.in_(("pending", "expired")),
                                                   req.expires_at >= p.start, req.expires_at < p.end)),
    }


def restores(src: Source) -> Section | None:
    """Files and projects restored from backups during the period (members only)."""
    if src.recipient.external:
        return None
    done = restored_between(src.session, src.scope, src.period.start, src.period.end)
    if not done:
        return None
    items = [Item(title=r.artifact_name or r.entry or r.backup_key,
                  detail=f"{r.kind.replace('_', ' ')} by {r.actor_label}",
                  url=src.link(r.link) if r.link else src.link(project_link(src.project_id, "backups")))
             for r in done[:ITEM_LIMIT]]
    return Section(key="restores", title="Restored from backups", counts={"restores": len(done)}, items=items,
                   more=len(done) - len(items))


def _raid_section(src: Source, key: str, title: str, lines: list[raid.DigestLine],
                  counts: dict[str, int] | None = None) -> Section | None:
    if not lines:
        return None
    items = [Item(title=f"{line.item.ref} {line.item.title}" if line.item.ref else line.item.title, detail=line.note,
                  url=src.link(project_link(src.project_id, f"raid/items/{line.item.id}")))
             for line in lines[:ITEM_LIMIT]]
    return Section(key=key, title=title, counts=counts or {key: len(lines)}, items=items,
                   more=len(lines) - len(items))


def raid_actions(src: Source) -> Section | None:
    """Open actions of the RAID log overdue, or due in the coming week (members only: the log is internal)."""
    if src.recipient.external:
        return None
    overdue, due = raid.actions_due(src.session, src.scope, src.period.end)
    return _raid_section(src, "raid_actions", "Actions overdue and due this week", overdue + due,
                         {"raid_actions_overdue": len(overdue), "raid_actions_due": len(due)})


def raid_risks_issues(src: Source) -> Section | None:
    """Risks and issues new or changed during the period (members only)."""
    if src.recipient.external:
        return None
    lines = raid.risks_and_issues_changed(src.session, src.scope, src.period.start, src.period.end)
    return _raid_section(src, "raid_risks_issues", "New and changed risks and issues", lines)


def raid_decisions(src: Source) -> Section | None:
    """Decisions taken into the RAID log during the period (members only)."""
    if src.recipient.external:
        return None
    lines = raid.decisions_between(src.session, src.scope, src.period.start, src.period.end)
    return _raid_section(src, "raid_decisions", "Decisions of the week", lines)


def raid_comments(src: Source) -> Section | None:
    """Comments on the RAID log during the period (members only)."""
    if src.recipient.external:
        return None
    lines = raid.comments_between(src.session, src.scope, src.period.start, src.period.end)
    return _raid_section(src, "raid_comments", "Comments on the RAID log", lines)


# One entry per source, in the order they appear in the email.
SECTION_BUILDERS: list[SectionBuilder] = [
    documents_added, documents_reingested, ocr_backlog, stages_moved, signoffs, restores, raid_actions,
    raid_risks_issues, raid_decisions, raid_comments,
]


def project_summary(session: Session, scope: ProjectScope) -> dict[str, Any]:
    """The project's id and name, read in the caller's context (the one 404 when hidden)."""
    project = session.get(Project, scope.project_id)
    if project is None:
        raise NotFound("project not found")
    return {"id": str(project.id), "name": project.name}


def period_label(session: Session, scope: ProjectScope, period: Period, *, zone: bool = True) -> str:
    """The period as the project's people read it: dates in the project's time zone, named."""
    name = session.scalar(select(CommsSettings.timezone).where(CommsSettings.project_id == scope.project_id)) or "UTC"
    local = ZoneInfo(name)
    start, end = period.start.astimezone(local), period.end.astimezone(local)
    label = f"{start:%d %b} – {end:%d %b %Y}"
    return f"{label} ({name.replace('_', ' ')})" if zone else label


def build_sections(src: Source, builders: list[SectionBuilder] | None = None) -> list[Section]:
    """Run every section builder; empty sections are left out."""
    return [s for s in (build(src) for build in (builders or SECTION_BUILDERS)) if s is not None]


def build_digest(session: Session, scope: ProjectScope, period: Period, recipient: Recipient, *,
                 base_url: str = "", unsubscribe_url: str | None = None,
                 builders: list[SectionBuilder] | None = None, cache: SectionCache | None = None) -> Digest:
    """Build one project's digest for one recipient and period, in that recipient's view."""
    project_id = scope.project_id
    project = project_summary(session, scope)
    src = Source(session=session, scope=scope, period=period, recipient=recipient,
                 base_url=base_url.rstrip("/"))
    if cache is None or builders is not None:
        sections = build_sections(src, builders)
    else:
        key = (project_id, period.start, period.end, recipient.view, src.base_url)
        sections = cache.get_or_build(key, lambda: build_sections(src))
    counts = dict.fromkeys(COUNT_KEYS, 0) | {key: n for s in sections for key, n in s.counts.items()}
    org = brand_of(session, scope.org_id).name
    subject = one_line(f"{project['name']}: weekly digest {period_label(session, scope, period, zone=False)}")
    context = {"project": project, "period_label": period_label(session, scope, period), "sections": sections,
               "recipient": recipient, "org": org,
               "project_url": src.link(project_link(project_id)), "unsubscribe_url": unsubscribe_url}
    return Digest(project=project, period=period, recipient=recipient, counts=counts, sections=sections,
                  subject=subject, html=TEMPLATES.get_template("digest.html").render(**context),
                  text=TEMPLATES.get_template("digest.txt").render(**context), org=org)
