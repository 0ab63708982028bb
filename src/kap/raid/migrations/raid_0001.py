"""RAID: items, comments and their change record.

Revision ID: raid_0001
Revises: documents_0001
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from kap.core import rls

revision = "raid_0001"
down_revision = "documents_0001"
branch_labels = ("raid",)
depends_on = None


def _tenant_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("org_id", sa.Uuid(), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("project_id", sa.Uuid(), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    ]


def _fk(name: str, table: str, *, nullable: bool = True, ondelete: str = "SET NULL") -> sa.Column[Any]:
    return sa.Column(name, sa.Uuid(), sa.ForeignKey(f"{table}.id", ondelete=ondelete), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "raid_items",
        *_tenant_columns(),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("ref", sa.String(40)),
        sa.Column("fingerprint", sa.String(80), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(200)),
        sa.Column("due", sa.Date()),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("severity", sa.String(20)),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("origin", sa.String(20), nullable=False),
        _fk("source_artifact_id", "artifacts"),
        sa.Column("source_page", sa.Integer()),
        sa.Column("source_locator", sa.String(200), nullable=False),
        sa.Column("source_quote", sa.Text(), nullable=False),
        sa.Column("source_date", sa.Date()),
        _fk("created_by", "users"),
        _fk("reviewed_by", "users"),
        sa.Column("reviewed_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("project_id", "fingerprint", name="uq_raid_items_project_fingerprint"),
        sa.CheckConstraint("kind IN ('action', 'risk', 'issue', 'decision')", name="ck_raid_items_kind"),
        sa.CheckConstraint("state IN ('suggested', 'accepted', 'dismissed')", name="ck_raid_items_state"),
    )
    op.create_index("ix_raid_items_project_kind_state", "raid_items", ["project_id", "kind", "state"])
    op.create_index("ix_raid_items_source", "raid_items", ["source_artifact_id"])
    op.create_table(
        "raid_comments",
        *_tenant_columns(),
        _fk("item_id", "raid_items", nullable=False, ondelete="CASCADE"),
        _fk("author_id", "users"),
        sa.Column("author_label", sa.String(320), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_raid_comments_item_created", "raid_comments", ["item_id", "created_at"])
    op.create_index("ix_raid_comments_project_created", "raid_comments", ["project_id", "created_at"])
    op.create_table(
        "raid_changes",
        *_tenant_columns(),
        _fk("item_id", "raid_items", nullable=False, ondelete="CASCADE"),
        sa.Column("origin", sa.String(20), nullable=False),
        _fk("artifact_id", "artifacts"),
        _fk("actor_id", "users"),
        sa.Column("actor_label", sa.String(320), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_raid_changes_item_created", "raid_changes", ["item_id", "created_at"])
    op.create_index("ix_raid_changes_project_created", "raid_changes", ["project_id", "created_at"])
    for table in ("raid_items", "raid_comments", "raid_changes"):
        rls.protect(table, "project")


def downgrade() -> None:
    for table in ("raid_changes", "raid_comments", "raid_items"):
        op.drop_table(table)
