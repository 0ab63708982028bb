"""Durable outbox: a message is written with its log row inside the transaction that causes it.

Revision ID: 0004_mail_outbox
Revises: 0003_org_project_creators
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_mail_outbox"
down_revision = "0003_org_project_creators"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("email_log") as batch:
        batch.add_column(sa.Column("raw", sa.LargeBinary()))
        batch.add_column(sa.Column("owner", sa.String(40)))
        batch.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True)))
    op.create_index("ix_email_log_unsent", "email_log", ["status"],
                    sqlite_where=sa.text("status IN ('pending', 'sending')"),
                    postgresql_where=sa.text("status IN ('pending', 'sending')"))


def downgrade() -> None:
    op.drop_index("ix_email_log_unsent", "email_log")
    with op.batch_alter_table("email_log") as batch:
        for name in ("claimed_at", "owner", "raw"):
            batch.drop_column(name)
