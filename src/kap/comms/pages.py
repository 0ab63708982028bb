"""Comms on the web: settings and subscriptions sections of /settings, and the dashboard's scheduler chip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kap.comms import service
from kap.core.deps import ProjectContext
from kap.web.registry import Panel, Row, dashboard_panel, settings_section
from kap.web.render import TEMPLATE_DIRS, environment, when

TEMPLATES = Path(__file__).parent / "templates"
if TEMPLATES not in TEMPLATE_DIRS:
    TEMPLATE_DIRS.append(TEMPLATES)

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
CATEGORY_LABELS = {"digest": "Weekly digest", "signoff": "Sign-off news", "alerts": "Alerts"}


def _render(template: str, ctx: ProjectContext, **values: Any) -> str:
    return environment().get_template(template).render(ctx=ctx, weekdays=WEEKDAYS, categories=CATEGORY_LABELS,
                                                        api_q=f"project_id={ctx.project_id}", **values)


@settings_section(order=20)
def comms_settings_section(ctx: ProjectContext) -> str | None:
    """Time zone, quiet hours, daily cap and the digest schedule (pm and above)."""
    if not ctx.allows("comms.manage"):
        return None
    return _render("comms_settings.html", ctx, settings=service.get_settings(ctx))


@settings_section(order=30)
def subscriptions_section(ctx: ProjectContext) -> str | None:
    """The caller's own subscriptions and, for pm and above, the external recipients."""
    if not ctx.allows("subscriptions.self"):
        return None
    return _render("comms_subscriptions.html", ctx, subs=service.get_subscriptions(ctx))


def scheduler_chip(status: dict[str, Any]) -> str:
    """One line: the last digest sent and the next window."""
    last = status.get("last_digest")
    window = status.get("next_window")
    sent = f"Last digest {when(last['at'])}" if last else "No digest sent yet"
    if not status.get("digest_enabled") or not window:
        return f"{sent} · digest off"
    return f"{sent} · next window {when(window['start'], window['timezone'])}"


@dashboard_panel(order=30)
def scheduler_panel(ctx: ProjectContext) -> Panel | None:
    """The scheduler chip: last digest and next window, with the last and next backup."""
    if not ctx.allows("comms.read"):
        return None
    status = service.scheduler_status(ctx)
    backups = status.get("backups") or {}
    last = backups.get("last")
    rows = [Row(text="Last backup", meta=when(last["at"]) if last else "none yet"),
            Row(text="Next backup", meta=when(backups.get("next")))]
    if backups.get("last_failure"):
        rows.append(Row(text="Last backup failed", meta=str(backups["last_failure"].get("error") or "")[:120]))
    waiting = (status.get("waiting") or {}).get("total") or 0
    if waiting:
        rows.append(Row(text="Digests waiting", meta=str(waiting)))
    return Panel(id="scheduler", title="Scheduler", chip=scheduler_chip(status), rows=rows)
