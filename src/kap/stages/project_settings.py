"""A project's sign-off settings: the reminder delay and whether signers confirm a mailed code."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from kap.core.deps import ProjectContext
from kap.core.errors import ValidationFailed
from kap.core.scope import ProjectScope
from kap.stages.models import SignoffRequest, StageSettings
from kap.stages.schemas import SignoffSettingsRead, SignoffSettingsUpdate

DEFAULT_REMINDER_DAYS = 3
MAX_REMINDERS = 2  # a third nudge reads as pressure; after two the team follows up in person


def settings_row(session: Session, scope: ProjectScope) -> StageSettings | None:
    """The project's settings row, if one was saved."""
    return session.scalar(select(StageSettings).where(StageSettings.project_id == scope.project_id))


def requires_code(session: Session, req: SignoffRequest) -> bool:
    """Whether the signer of this request confirms a mailed code before deciding (its project's setting)."""
    flag = session.scalar(select(StageSettings.require_code).where(StageSettings.project_id == req.project_id))
    return bool(flag)


def _read(row: StageSettings | None) -> SignoffSettingsRead:
    return SignoffSettingsRead(reminder_days=row.reminder_days if row else DEFAULT_REMINDER_DAYS,
                               max_reminders=MAX_REMINDERS, require_code=bool(row and row.require_code))


def get_settings(ctx: ProjectContext) -> SignoffSettingsRead:
    """The project's sign-off settings (the defaults until a PM saves them)."""
    return _read(settings_row(ctx.session, ctx.scope))


def update_settings(ctx: ProjectContext, body: SignoffSettingsUpdate) -> SignoffSettingsRead:
    """Change the settings given; the rest keep their values."""
    changes = body.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if value is None:
            raise ValidationFailed(f"invalid value for {name}: may not be null",
                                   details={"fields": [{"field": name, "message": "may not be null"}]})
    row = settings_row(ctx.session, ctx.scope)
    if row is None:
        row = StageSettings(org_id=ctx.org_id, project_id=ctx.project_id, reminder_days=DEFAULT_REMINDER_DAYS,
                            require_code=False)
        ctx.session.add(row)
    old = {name: getattr(row, name) for name in changes}
    for name, value in changes.items():
        setattr(row, name, value)
    ctx.audit("stage.signoff_settings_updated", "project", ctx.project_id, old=old, new=changes)
    ctx.session.flush()
    return _read(row)
