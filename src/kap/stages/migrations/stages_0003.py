"""Reminder links: each reminder carries a link of its own, kept only as a hash.

Revision ID: stages_0003
Revises: stages_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "stages_0003"
down_revision = "stages_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("signoff_requests") as batch:
        batch.add_column(sa.Column("reminder_token_hash", sa.String(64)))
        batch.create_unique_constraint("uq_signoff_requests_reminder_token_hash", ["reminder_token_hash"])


def downgrade() -> None:
    with op.batch_alter_table("signoff_requests") as batch:
        batch.drop_constraint("uq_signoff_requests_reminder_token_hash", type_="unique")
        batch.drop_column("reminder_token_hash")
