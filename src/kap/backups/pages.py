"""The Backups page (list, contents, download, store + re-ingest, restore) and the Restore Activity panel."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from kap.admin.activity import label_name, label_names
from kap.backups.schemas import BackupContents
from kap.backups.service import contents, list_backups, restore_activity
from kap.core.deps import ProjectContext, RuntimeDep
from kap.core.errors import KapError
from kap.core.permissions import Action
from kap.core.runtime import Runtime
from kap.web.pages import legacy_redirect, project_page
from kap.web.registry import Panel, Row, dashboard_panel, nav_item, project_zone
from kap.web.render import TEMPLATE_DIRS, when

router = APIRouter(include_in_schema=False)
TEMPLATES = Path(__file__).parent / "templates"
if TEMPLATES not in TEMPLATE_DIRS:
    TEMPLATE_DIRS.append(TEMPLATES)

nav_item("backups", "Backups", Action.BACKUPS_READ, 70)
legacy_redirect(router, "/backups", "backups")


def _contents(ctx: ProjectContext, runtime: Runtime, key: str | None) -> tuple[BackupContents | None, str | None]:
    if not key:
        return None, None
    try:
        return contents(ctx, runtime, key), None
    except KapError as exc:
        return None, exc.message


def _query(ctx: ProjectContext, **params: str) -> str:
    return urlencode({"project_id": str(ctx.project_id), **params})


@router.get("/p/{project_id}/backups")
def backups_page(project_id: str, request: Request, runtime: RuntimeDep,
                 key: Annotated[str | None, Query(max_length=400)] = None) -> Response:
    """The project's backups, the contents of one, and what may be done with them."""
    def values(ctx: ProjectContext) -> dict[str, Any]:
        listing = list_backups(ctx, runtime)
        chosen = key or (listing.backups[0].key if listing.backups else None)
        shown, problem = _contents(ctx, runtime, chosen)
        activity = restore_activity(ctx.session, ctx.scope, limit=20)
        return {"listing": listing, "chosen": chosen, "shown": shown, "problem": problem,
                "q": lambda **p: _query(ctx, **p), "can_run": ctx.allows(Action.BACKUPS_RUN),
                "can_restore": ctx.allows(Action.BACKUPS_RESTORE),
                "activity": activity, "names": label_names(ctx.session, [i.actor_label for i in activity]),
                "label_name": label_name}
    return project_page(request, runtime, project_id, "backups.html", Action.BACKUPS_READ, values)


@dashboard_panel(order=60, action=Action.BACKUPS_READ)
def restore_activity_panel(ctx: ProjectContext) -> Panel | None:
    """What was restored from backups, by whom and when; each row opens the document."""
    rows = []
    items = restore_activity(ctx.session, ctx.scope, limit=8)
    names = label_names(ctx.session, [i.actor_label for i in items])
    zone = project_zone(ctx)
    for item in items:
        if item.kind == "reingest":
            text = f"{item.artifact_name or item.entry} restored from {item.backup_key.rsplit('/', 1)[-1]}"
        else:
            text = f"Project restored ({item.mode}) from {item.backup_key.rsplit('/', 1)[-1]}"
        who = label_name(item.actor_label, names)
        rows.append(Row(text=text, href=item.link, meta=f"{who} · {when(item.created_at, zone)}"))
    return Panel(id="restore-activity", title="Restore Activity", rows=rows, empty="Nothing restored yet.")
