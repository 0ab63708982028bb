"""The Ask Kap page: a question box, the answer and its numbered citations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kap.core.deps import ProjectContext, RuntimeDep
from kap.core.permissions import Action
from kap.web.pages import legacy_redirect, project_page
from kap.web.registry import nav_item
from kap.web.render import TEMPLATE_DIRS

router = APIRouter(include_in_schema=False)
TEMPLATES = Path(__file__).parent / "templates"
if TEMPLATES not in TEMPLATE_DIRS:
    TEMPLATE_DIRS.append(TEMPLATES)

nav_item("ask", "Ask Kap", Action.ASK_USE, 30)
legacy_redirect(router, "/ask", "ask")


@router.get("/p/{project_id}/ask")
def ask_page(project_id: str, request: Request, runtime: RuntimeDep, q: str | None = None) -> Response:
    """Show the question box; the answer comes from the ask API in the browser."""
    def values(ctx: ProjectContext) -> dict[str, Any]:
        return {"question": (q or "")[:2000]}
    return project_page(request, runtime, project_id, "ask.html", Action.ASK_USE, values)
