"""Every link Kap shows or mails into a project page carries the project: one builder for them all."""

from __future__ import annotations

import uuid


def project_link(project_id: uuid.UUID | str, section: str = "dashboard") -> str:
    """A page of one project: `/p/<project>/<section>`."""
    return f"/p/{project_id}/{section.lstrip('/')}"


def document_link(project_id: uuid.UUID | str, artifact_id: uuid.UUID | str, page: int | None = None) -> str:
    """One document of a project, scrolled to a page when one is given."""
    return project_link(project_id, f"documents/{artifact_id}") + (f"#page={page}" if page else "")


def stage_link(project_id: uuid.UUID | str, stage_id: uuid.UUID | str | None = None) -> str:
    """The stages page of a project, opened at one stage when one is given."""
    return project_link(project_id, "stages") + (f"#stage={stage_id}" if stage_id else "")
