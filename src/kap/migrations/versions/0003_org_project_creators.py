"""Who may create projects in an org: its owners and admins (the default) or every member.

Revision ID: 0003_org_project_creators
Revises: 0002_invites_branding
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_org_project_creators"
down_revision = "0002_invites_branding"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orgs") as batch:
        batch.add_column(sa.Column("project_creators", sa.String(20), nullable=False, server_default="admins"))


def downgrade() -> None:
    with op.batch_alter_table("orgs") as batch:
        batch.drop_column("project_creators")
