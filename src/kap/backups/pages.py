"""The dashboard's Restore Activity panel."""

from __future__ import annotations

from kap.backups.service import restore_activity
from kap.core.deps import ProjectContext
from kap.web.registry import Panel, Row, dashboard_panel


@dashboard_panel(order=60)
def restore_activity_panel(ctx: ProjectContext) -> Panel | None:
    """What was restored from backups, by whom and when; each row opens the document."""
    if not ctx.allows("documents.read"):
        return None
    rows = []
    for item in restore_activity(ctx.session, ctx.project_id, limit=8):
        if item.kind == "reingest":
            text = f"{item.artifact_name or item.entry} restored from {item.backup_key.rsplit('/', 1)[-1]}"
        else:
            text = f"Project restored ({item.mode}) from {item.backup_key.rsplit('/', 1)[-1]}"
        rows.append(Row(text=text, href=item.link, meta=f"{item.actor_label} · {item.created_at:%Y-%m-%d %H:%M}"))
    return Panel(id="restore-activity", title="Restore Activity", rows=rows, empty="Nothing restored yet.")
