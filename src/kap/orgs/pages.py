"""Org settings on the web: the section of a project's settings page for the org's owners and admins."""

from __future__ import annotations

from pathlib import Path

from kap.core.branding import LOGO_TYPES, MAX_LOGO_BYTES, brand_of
from kap.core.deps import ProjectContext
from kap.core.errors import KapError
from kap.core.permissions import PROJECT_CREATORS_LABELS, Action
from kap.orgs import service
from kap.web.registry import settings_section
from kap.web.render import TEMPLATE_DIRS, environment

TEMPLATES = Path(__file__).parent / "templates"
if TEMPLATES not in TEMPLATE_DIRS:
    TEMPLATE_DIRS.append(TEMPLATES)


# Org owners and admins reach every project of the org as its admin or owner, so `project.update`
# is the floor; the section then asks the same question as the API (`service.manage`).
@settings_section(order=10, action=Action.PROJECT_UPDATE)
def org_settings_section(ctx: ProjectContext) -> str | None:
    """The org's display name, logo and who may create projects, for its owners and admins."""
    try:
        org = service.manage(ctx.session, ctx.identity, ctx.org_id)
    except KapError:
        return None  # a project admin who does not administer the org
    return environment().get_template("org_settings.html").render(
        org=service.read(ctx.session, org.org_id, org.role), brand=brand_of(ctx.session, org.org_id),
        creators=PROJECT_CREATORS_LABELS, logo_types=", ".join(t.split("/")[1].upper() for t in LOGO_TYPES),
        max_kb=MAX_LOGO_BYTES // 1024)
