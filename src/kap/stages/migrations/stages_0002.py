"""Sealed sign-off: stage revisions, archived stages, what the signer was shown, reminders, codes, settings.

Revision ID: stages_0002
Revises: stages_0001
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from kap.core import rls

revision = "stages_0002"
down_revision = "stages_0001"
branch_labels = None
depends_on = None


def _tenant_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("org_id", sa.Uuid(), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("project_id", sa.Uuid(), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    ]


def upgrade() -> None:
    with op.batch_alter_table("stages") as batch:
        batch.add_column(sa.Column("archived_at", sa.DateTime(timezone=True)))
    with op.batch_alter_table("signoff_requests") as batch:
        batch.add_column(sa.Column("revision_id", sa.Uuid()))
        batch.add_column(sa.Column("content_digest", sa.String(64)))
        batch.add_column(sa.Column("reminder_count", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("reminded_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("expiry_notified_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("code_hash", sa.String(64)))
        batch.add_column(sa.Column("code_expires_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("code_tries", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("code_verified_at", sa.DateTime(timezone=True)))
    op.create_table(
        "stage_revisions",
        *_tenant_columns(),
        sa.Column("stage_id", sa.Uuid(), sa.ForeignKey("stages.id", ondelete="CASCADE"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("planned_start", sa.Date()),
        sa.Column("planned_end", sa.Date()),
        sa.Column("documents", sa.JSON(), nullable=False),
        sa.Column("request_id", sa.Uuid()),
        sa.Column("created_by", sa.Uuid(), sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("stage_id", "number", name="uq_stage_revisions_stage_id"),
        sa.CheckConstraint("state IN ('draft', 'signed')", name="ck_stage_revisions_state"),
    )
    op.create_index("ix_stage_revisions_project_id", "stage_revisions", ["project_id"])
    op.create_table(
        "stage_settings",
        *_tenant_columns(),
        sa.Column("reminder_days", sa.Integer(), nullable=False, server_default="3"),
        sa.Column("require_code", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("project_id", name="uq_stage_settings_project_id"),
    )
    for table in ("stage_revisions", "stage_settings"):
        rls.protect(table, "project")


def downgrade() -> None:
    op.drop_table("stage_settings")
    op.drop_table("stage_revisions")
    with op.batch_alter_table("signoff_requests") as batch:
        for name in ("code_verified_at", "code_tries", "code_expires_at", "code_hash", "expiry_notified_at",
                     "reminded_at", "reminder_count", "content_digest", "revision_id"):
            batch.drop_column(name)
    with op.batch_alter_table("stages") as batch:
        batch.drop_column("archived_at")
