"""Reminder links: every reminder's link is kept (as a hash), not only the newest.

Before, a second reminder replaced the first reminder's link, so a signer who opened the
earlier email was told the link no longer worked. The newest hash moves to the new table.

Revision ID: stages_0004
Revises: stages_0003
"""

import sqlalchemy as sa
from alembic import op

from kap.core import rls

revision = "stages_0004"
down_revision = "stages_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signoff_reminder_links",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("org_id", sa.Uuid(), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("project_id", sa.Uuid(), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("request_id", sa.Uuid(), sa.ForeignKey("signoff_requests.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_signoff_reminder_links_project_id", "signoff_reminder_links", ["project_id"])
    op.create_index("ix_signoff_reminder_links_request_id", "signoff_reminder_links", ["request_id"])
    rls.protect("signoff_reminder_links", "project")
    # The newest link of each request moves over, with the request's id as its own (one per request).
    op.execute("INSERT INTO signoff_reminder_links (id, org_id, project_id, request_id, token_hash, created_at) "
               "SELECT id, org_id, project_id, id, reminder_token_hash, coalesce(reminded_at, created_at) "
               "FROM signoff_requests WHERE reminder_token_hash IS NOT NULL")
    with op.batch_alter_table("signoff_requests") as batch:
        batch.drop_constraint("uq_signoff_requests_reminder_token_hash", type_="unique")
        batch.drop_column("reminder_token_hash")


def downgrade() -> None:
    with op.batch_alter_table("signoff_requests") as batch:
        batch.add_column(sa.Column("reminder_token_hash", sa.String(64)))
        batch.create_unique_constraint("uq_signoff_requests_reminder_token_hash", ["reminder_token_hash"])
    # The newest reminder's link per request goes back; earlier ones had no place before.
    op.execute("UPDATE signoff_requests SET reminder_token_hash = (SELECT l.token_hash FROM signoff_reminder_links l "
               "WHERE l.request_id = signoff_requests.id ORDER BY l.created_at DESC LIMIT 1)")
    op.drop_table("signoff_reminder_links")

