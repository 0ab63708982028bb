"""The sign-off invitation email, in text and HTML."""

from __future__ import annotations

from datetime import datetime

from kap.core.mail import Mail
from kap.stages.models import Stage
from kap.stages.render import render
from kap.stages.schemas import ArtifactRef


def invitation(*, to: str, recipient_name: str | None, requester: str, project_name: str, stage: Stage,
               documents: list[ArtifactRef], message: str | None, link: str, expires_at: datetime,
               org: str = "Kap") -> Mail:
    """Build the email that carries a sign-off link."""
    context = {"recipient_name": recipient_name, "requester": requester, "project_name": project_name, "org": org,
               "stage": stage, "documents": documents, "message": message, "link": link,
               "expires_at": expires_at}
    subject = f"Sign-off requested: {stage.title} ({project_name})"
    return Mail(to=to, subject=subject, text=render("signoff_email.txt", **context),
                html=render("signoff_email.html", **context), kind="signoff",
                org_id=stage.org_id, project_id=stage.project_id, sender_name=org)
