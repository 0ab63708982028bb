"""Ask: the question log.

Revision ID: ask_0001
Revises: documents_0001
"""

import sqlalchemy as sa
from alembic import op

from kap.core import rls

revision = "ask_0001"
down_revision = "documents_0001"
branch_labels = ("ask",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ask_questions",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("org_id", sa.Uuid(), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("project_id", sa.Uuid(), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("actor_label", sa.String(320), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("mode", sa.String(20), nullable=False),
        sa.Column("retrieval", sa.String(20), nullable=False),
        sa.Column("found", sa.Boolean(), nullable=False),
        sa.Column("chunk_ids", sa.JSON(), nullable=False),
        sa.Column("cited_chunk_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ask_questions_project_created", "ask_questions", ["project_id", "created_at"])
    rls.protect("ask_questions", "project")


def downgrade() -> None:
    op.drop_table("ask_questions")
