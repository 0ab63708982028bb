"""Invitation links apart from sign-in links; an org's display name and logo for its mail and pages.

Revision ID: 0002_invites_branding
Revises: 0001_core
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_invites_branding"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("login_tokens") as batch:
        batch.add_column(sa.Column("purpose", sa.String(20), nullable=False, server_default="login"))
        batch.add_column(sa.Column("invited_by", sa.Uuid()))
        batch.add_column(sa.Column("invite_project_id", sa.Uuid()))
    with op.batch_alter_table("orgs") as batch:
        batch.add_column(sa.Column("display_name", sa.String(200)))
        batch.add_column(sa.Column("logo", sa.LargeBinary()))
        batch.add_column(sa.Column("logo_type", sa.String(40)))


def downgrade() -> None:
    with op.batch_alter_table("orgs") as batch:
        batch.drop_column("logo_type")
        batch.drop_column("logo")
        batch.drop_column("display_name")
    with op.batch_alter_table("login_tokens") as batch:
        batch.drop_column("invite_project_id")
        batch.drop_column("invited_by")
        batch.drop_column("purpose")
