"""Stages: stages, attached documents, sign-off requests, internal signers.

Revision ID: stages_0001
Revises: documents_0001
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from kap.core import rls

revision = "stages_0001"
down_revision = "documents_0001"
branch_labels = ("stages",)
depends_on = None

PENDING_ONLY = sa.text("status = 'pending'")


def _tenant_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("org_id", sa.Uuid(), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("project_id", sa.Uuid(), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    ]


def _users_fk(name: str, *, nullable: bool = True, ondelete: str = "SET NULL") -> sa.Column[Any]:
    return sa.Column(name, sa.Uuid(), sa.ForeignKey("users.id", ondelete=ondelete), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "stages",
        *_tenant_columns(),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("planned_start", sa.Date()),
        sa.Column("planned_end", sa.Date()),
        _users_fk("owner_id"),
        sa.Column("summary", sa.Text(), nullable=False),
        _users_fk("created_by"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("status IN ('pending', 'in_progress', 'in_review', 'signed_off', 'rejected')",
                           name="ck_stages_status"),
    )
    op.create_index("ix_stages_project_position", "stages", ["project_id", "position"])
    op.create_table(
        "stage_artifacts",
        *_tenant_columns(),
        sa.Column("stage_id", sa.Uuid(), sa.ForeignKey("stages.id", ondelete="CASCADE"), nullable=False),
        sa.Column("artifact_id", sa.Uuid(), sa.ForeignKey("artifacts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("stage_id", "artifact_id", name="uq_stage_artifacts_stage_id"),
    )
    op.create_index("ix_stage_artifacts_artifact_id", "stage_artifacts", ["artifact_id"])
    op.create_table(
        "signoff_requests",
        *_tenant_columns(),
        sa.Column("stage_id", sa.Uuid(), sa.ForeignKey("stages.id", ondelete="CASCADE"), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("token_hash", sa.String(64), unique=True),
        sa.Column("recipient_email", sa.String(320), nullable=False),
        sa.Column("recipient_name", sa.String(200)),
        sa.Column("message", sa.Text()),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("email_status", sa.String(20)),
        _users_fk("created_by"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True)),
        sa.Column("open_count", sa.Integer(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("replaced_by_id", sa.Uuid()),
        sa.Column("signer_name", sa.String(200)),
        sa.Column("signer_email", sa.String(320)),
        _users_fk("signer_user_id"),
        sa.Column("note", sa.Text()),
        sa.Column("decided_ip", sa.String(64)),
        sa.Column("decided_user_agent", sa.String(400)),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.CheckConstraint("status IN ('pending', 'approved', 'rejected', 'expired', 'revoked')",
                           name="ck_signoff_requests_status"),
        sa.CheckConstraint("channel IN ('external', 'internal')", name="ck_signoff_requests_channel"),
    )
    op.create_index("ix_signoff_requests_project_id", "signoff_requests", ["project_id"])
    op.create_index("ix_signoff_requests_stage_created", "signoff_requests", ["stage_id", "created_at"])
    op.create_index("ix_signoff_requests_status_expires", "signoff_requests", ["status", "expires_at"])
    op.create_index("uq_signoff_requests_one_pending", "signoff_requests", ["stage_id"], unique=True,
                    sqlite_where=PENDING_ONLY, postgresql_where=PENDING_ONLY)
    op.create_table(
        "stage_signers",
        *_tenant_columns(),
        _users_fk("user_id", nullable=False, ondelete="CASCADE"),
        _users_fk("created_by"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("project_id", "user_id", name="uq_stage_signers_project_id"),
    )
    for table in ("stages", "stage_artifacts", "signoff_requests", "stage_signers"):
        rls.protect(table, "project")


def downgrade() -> None:
    for table in ("stage_signers", "signoff_requests", "stage_artifacts", "stages"):
        op.drop_table(table)
