"""RAID pages: the log, the review queue, one item with its source and comments; the dashboard panel."""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from kap.core.deps import ProjectContext, RuntimeDep
from kap.core.errors import NotFound
from kap.core.links import project_link
from kap.core.permissions import Action
from kap.raid import service
from kap.raid.models import KINDS, OPEN_STATUSES, SEVERITIES, STATUSES
from kap.raid.schemas import RaidItemRead
from kap.web.pages import legacy_redirect, project_page
from kap.web.registry import Panel, Row, dashboard_panel, nav_item
from kap.web.render import TEMPLATE_DIRS, Page, with_page

router = APIRouter(include_in_schema=False)
TEMPLATES = Path(__file__).parent / "templates"
if TEMPLATES not in TEMPLATE_DIRS:
    TEMPLATE_DIRS.append(TEMPLATES)

nav_item("raid", "RAID log", Action.RAID_READ, 35)
legacy_redirect(router, "/raid", "raid")
legacy_redirect(router, "/raid/review", "raid/review")

KIND_LABELS = {"action": "Action", "risk": "Risk", "issue": "Issue", "decision": "Decision"}
STATUS_LABELS = {"open": "Open", "in_progress": "In progress", "pending": "Pending", "done": "Done",
                 "closed": "Closed", "resolved": "Resolved", "approved": "Approved", "decided": "Decided",
                 "rejected": "Rejected"}
SORTS: dict[str, Any] = {
    "ref": lambda i: (i.ref is None, i.ref or "", i.title.lower()),
    "kind": lambda i: (i.kind, i.ref or ""),
    "title": lambda i: i.title.lower(),
    "owner": lambda i: (i.owner is None, (i.owner or "").lower()),
    "due": lambda i: (i.due is None, i.due or date.max),
    "status": lambda i: (i.status, i.ref or ""),
    "severity": lambda i: (i.severity is None, -SEVERITIES.index(i.severity) if i.severity else 0),
}


def _common(ctx: ProjectContext) -> dict[str, Any]:
    return {"kinds": KINDS, "statuses": STATUSES, "severities": SEVERITIES, "kind_labels": KIND_LABELS,
            "status_labels": STATUS_LABELS, "can_edit": ctx.allows(Action.RAID_WRITE),
            "can_comment": ctx.allows(Action.RAID_COMMENT), "api_q": f"project_id={ctx.project_id}"}


@router.get("/p/{project_id}/raid")
def raid_log(project_id: str, request: Request, runtime: RuntimeDep, kind: str | None = None, status: str | None = None,
             owner: str | None = None, q: str | None = None, sort: str = "ref", desc: bool = False) -> Response:
    """The accepted items, filtered and sorted, editable in place for leads and above."""
    def values(ctx: ProjectContext) -> dict[str, Any]:
        filters = {"kind": kind if kind in KINDS else None,
                   "status": status if status in (*STATUSES, "open_any") else None,
                   "owner": (owner or "").strip()[:200] or None, "q": (q or "").strip()[:200] or None}
        items = service.list_items(ctx, state="accepted", kind=filters["kind"], status=filters["status"],
                                   owner=filters["owner"], q=filters["q"])
        key = sort if sort in SORTS else "ref"
        items.sort(key=SORTS[key], reverse=desc)
        queued = len(service.list_items(ctx, state="suggested"))
        base = {k: v for k, v in filters.items() if v}
        links = {col: "?" + urlencode({**base, "sort": col, **({"desc": "1"} if col == key and not desc else {})})
                 for col in SORTS}
        return {**_common(ctx), "items": items, "filters": filters, "sort": key, "desc": desc, "sort_links": links,
                "queued": queued, "csv_href": "/api/raid/export.csv?" + urlencode({"project_id": ctx.project_id,
                                                                                  "state": "accepted", **base})}
    return project_page(request, runtime, project_id, "raid.html", Action.RAID_READ, values)


@router.get("/p/{project_id}/raid/review")
def review_queue(project_id: str, request: Request, runtime: RuntimeDep) -> Response:
    """What Kap found in the documents, waiting to be accepted, edited or dismissed."""
    def values(ctx: ProjectContext) -> dict[str, Any]:
        return {**_common(ctx), "items": service.list_items(ctx, state="suggested")}
    return project_page(request, runtime, project_id, "raid_review.html", Action.RAID_READ, values)


@router.get("/p/{project_id}/raid/items/{item_id}")
def item_page(project_id: str, item_id: str, request: Request, runtime: RuntimeDep) -> Response:
    """One item: its fields, the quoted source, what changed and the comments."""
    def build(page: Page, session: Session) -> Response:
        ctx = page.ctx
        assert ctx is not None
        try:
            item = service.item_read(ctx, service.find_item(ctx, uuid.UUID(item_id)))
        except (ValueError, NotFound):
            return page.render("raid_missing.html", status=404)
        return page.render("raid_item.html", **_common(ctx), item=item,
                           comments=service.list_comments(ctx, item.id), changes=service.list_changes(ctx, item.id))
    return with_page(request, runtime, build, project_id=project_id, action=Action.RAID_READ)


def _due_meta(item: RaidItemRead) -> str:
    owner = item.owner or "no owner"
    return f"{owner} · due {item.due:%b %d}" if item.due else owner


@dashboard_panel(order=20, action=Action.RAID_READ)
def raid_panel(ctx: ProjectContext) -> Panel | None:
    """Overdue actions and open high risks, the two things a PM looks at first."""
    overdue = [i for i in service.list_items(ctx, kind="action", state="accepted", overdue=True)]
    risks = [i for i in service.list_items(ctx, kind="risk", state="accepted")
             if i.status in OPEN_STATUSES and i.severity in ("high", "critical")]
    def link(item: RaidItemRead) -> str:
        return project_link(ctx.project_id, f"raid/items/{item.id}")

    def label(item: RaidItemRead) -> str:
        return f"{item.ref} {item.title}" if item.ref else item.title

    rows = [Row(text=f"Overdue: {label(i)}", href=link(i), meta=_due_meta(i))
            for i in sorted(overdue, key=lambda i: i.due or date.max)]
    rows += [Row(text=f"{(i.severity or '').capitalize()} risk: {label(i)}", href=link(i),
                 meta=i.owner or "no owner") for i in risks]
    plural = "" if len(risks) == 1 else "s"
    return Panel(id="raid", title="RAID: needs attention", rows=rows[:10],
                 chip=f"{len(overdue)} overdue · {len(risks)} high risk{plural}" if rows else None,
                 empty="No overdue actions and no open high risks.")
