"""Backups: backup runs and restore activity.

Revision ID: backups_0001
Revises: documents_0001
"""

import sqlalchemy as sa
from alembic import op

from kap.core import rls

revision = "backups_0001"
down_revision = "documents_0001"
branch_labels = ("backups",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backup_runs",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("org_id", sa.Uuid(), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("project_id", sa.Uuid(), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("entry_count", sa.Integer(), nullable=False),
        sa.Column("row_counts", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("status IN ('running', 'done', 'failed', 'trimmed')", name="ck_backup_runs_status"),
    )
    op.create_index("ix_backup_runs_project_day", "backup_runs", ["project_id", "day"])
    op.create_table(
        "restore_activity",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("org_id", sa.Uuid(), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("project_id", sa.Uuid(), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("backup_key", sa.String(400), nullable=False),
        sa.Column("entry", sa.String(400)),
        sa.Column("artifact_id", sa.Uuid()),
        sa.Column("artifact_name", sa.String(255)),
        sa.Column("target_project_id", sa.Uuid()),
        sa.Column("mode", sa.String(20)),
        sa.Column("actor_id", sa.Uuid()),
        sa.Column("actor_label", sa.String(320), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('reingest', 'restore')", name="ck_restore_activity_kind"),
    )
    op.create_index("ix_restore_activity_project_created", "restore_activity", ["project_id", "created_at"])
    rls.protect("backup_runs", "project")
    rls.protect("restore_activity", "project")


def downgrade() -> None:
    op.drop_table("restore_activity")
    op.drop_table("backup_runs")
