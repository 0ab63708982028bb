"""The Stages page: the plan, sign-off requests and their decisions, certificates; the stage progress panel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kap.core.deps import ProjectContext, RuntimeDep
from kap.core.links import project_link, stage_link
from kap.core.permissions import Action
from kap.documents.service import list_documents
from kap.projects.service import list_members
from kap.stages import project_settings, service, signoff
from kap.stages.schemas import SignoffRequestRead, StageRead
from kap.web.pages import legacy_redirect, project_page
from kap.web.registry import Panel, Row, dashboard_panel, nav_item
from kap.web.render import TEMPLATE_DIRS

router = APIRouter(include_in_schema=False)
TEMPLATES = Path(__file__).parent / "templates"
if TEMPLATES not in TEMPLATE_DIRS:
    TEMPLATE_DIRS.append(TEMPLATES)

nav_item("stages", "Stages", Action.STAGES_READ, 40)
legacy_redirect(router, "/stages", "stages")

STAGE_LABELS = {"pending": "Not started", "in_progress": "In progress", "in_review": "Awaiting sign-off",
                "signed_off": "Signed off", "rejected": "Rejected"}
DECIDED = ("approved", "rejected")
FIELD_LABELS = {"title": "Title", "summary": "Summary", "planned_start": "Planned start",
                "planned_end": "Planned end", "document": "Document"}


def _requests(ctx: ProjectContext, stages: list[StageRead]) -> dict[Any, list[SignoffRequestRead]]:
    return {s.id: signoff.list_requests(ctx, s.id) for s in stages}


@router.get("/p/{project_id}/stages")
def stages_page(project_id: str, request: Request, runtime: RuntimeDep) -> Response:
    """The project's stages with plan editing and sign-off for pm and above."""
    def values(ctx: ProjectContext) -> dict[str, Any]:
        stages = service.list_stages(ctx)
        members = list_members(ctx)
        return {"stages": stages, "requests": _requests(ctx, stages), "members": members,
                "owners": {m.user_id: m.name or m.email or "a member" for m in members},
                "labels": STAGE_LABELS, "decided": DECIDED, "can_plan": ctx.allows(Action.STAGES_WRITE),
                "can_request": ctx.allows(Action.SIGNOFF_REQUEST),
                "can_decide": ctx.allows(Action.SIGNOFF_DECIDE_INTERNAL), "api_q": f"project_id={ctx.project_id}",
                "missing_defaults": service.missing_template_titles(ctx), "field_labels": FIELD_LABELS,
                "documents_href": project_link(ctx.project_id, "documents"),
                "signoff_settings": project_settings.get_settings(ctx),
                "documents": list_documents(ctx, limit=200).documents if ctx.allows(Action.STAGES_WRITE) else []}
    return project_page(request, runtime, project_id, "stages.html", Action.STAGES_READ, values)


@dashboard_panel(order=15, action=Action.STAGES_READ)
def stage_progress_panel(ctx: ProjectContext) -> Panel | None:
    """How far the project is: each stage with its status, signed-off count as the chip."""
    stages = service.list_stages(ctx)
    done = sum(1 for s in stages if s.status == "signed_off")
    rows = [Row(text=s.title, href=stage_link(ctx.project_id, s.id), meta=STAGE_LABELS.get(s.status, s.status))
            for s in stages]
    return Panel(id="stage-progress", title="Stage progress", rows=rows,
                 chip=f"{done} of {len(stages)} signed off" if stages else None,
                 empty="No stages planned yet.")
