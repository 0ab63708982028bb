"""Core tables: orgs, users, members, projects, audit, telemetry, login, mail log.

Revision ID: 0001_core
Revises:
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from kap.core import rls

revision = "0001_core"
down_revision = None
branch_labels = ("core",)
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "orgs",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        _ts("created_at"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("email", sa.String(320), unique=True),
        sa.Column("name", sa.String(200)),
        _ts("created_at"),
    )
    op.create_table(
        "org_members",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("org_id", sa.Uuid(), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("org_id", "user_id", name="uq_org_members_org_id"),
        sa.CheckConstraint("role IN ('owner', 'admin', 'member')", name="ck_org_members_role"),
    )
    op.create_index("ix_org_members_org_id", "org_members", ["org_id"])
    op.create_index("ix_org_members_user_id", "org_members", ["user_id"])
    op.create_table(
        "projects",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("org_id", sa.Uuid(), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_by", sa.Uuid(), sa.ForeignKey("users.id", ondelete="SET NULL")),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("archived_at", nullable=True),
    )
    op.create_index("ix_projects_org_id", "projects", ["org_id"])
    op.create_table(
        "project_members",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("org_id", sa.Uuid(), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("project_id", sa.Uuid(), sa.ForeignKey("projects.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("project_id", "user_id", name="uq_project_members_project_id"),
        sa.CheckConstraint("role IN ('owner', 'admin', 'pm', 'lead', 'member')",
                           name="ck_project_members_role"),
    )
    op.create_index("ix_project_members_org_id", "project_members", ["org_id"])
    op.create_index("ix_project_members_user_id", "project_members", ["user_id"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("org_id", sa.Uuid(), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("project_id", sa.Uuid(), sa.ForeignKey("projects.id", ondelete="CASCADE")),
        sa.Column("actor_id", sa.Uuid()),
        sa.Column("actor_label", sa.String(320), nullable=False),
        sa.Column("action", sa.String(80), nullable=False),
        sa.Column("target_type", sa.String(40), nullable=False),
        sa.Column("target_id", sa.String(80), nullable=False),
        sa.Column("ip", sa.String(64)),
        sa.Column("user_agent", sa.String(400)),
        sa.Column("details", sa.JSON(), nullable=False),
        _ts("created_at"),
    )
    op.create_index("ix_audit_events_org_created", "audit_events", ["org_id", "created_at"])
    op.create_index("ix_audit_events_project_created", "audit_events", ["project_id", "created_at"])
    op.create_index("ix_audit_events_action", "audit_events", ["action"])
    op.create_table(
        "telemetry_events",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("org_id", sa.Uuid(), sa.ForeignKey("orgs.id", ondelete="CASCADE")),
        sa.Column("project_id", sa.Uuid()),
        sa.Column("user_id", sa.Uuid()),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("status", sa.Integer()),
        sa.Column("method", sa.String(10), nullable=False),
        sa.Column("path", sa.String(400), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("client_ip", sa.String(64)),
        sa.Column("details", sa.JSON(), nullable=False),
        _ts("created_at"),
    )
    op.create_index("ix_telemetry_events_created", "telemetry_events", ["created_at"])
    op.create_index("ix_telemetry_events_org_id", "telemetry_events", ["org_id"])
    op.create_index("ix_telemetry_events_kind", "telemetry_events", ["kind"])
    op.create_table(
        "login_tokens",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        _ts("expires_at"),
        _ts("used_at", nullable=True),
        _ts("created_at"),
    )
    op.create_index("ix_login_tokens_user_id", "login_tokens", ["user_id"])
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        _ts("expires_at"),
        _ts("created_at"),
    )
    op.create_index("ix_user_sessions_user_id", "user_sessions", ["user_id"])
    op.create_table(
        "email_log",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("org_id", sa.Uuid(), sa.ForeignKey("orgs.id", ondelete="CASCADE")),
        sa.Column("project_id", sa.Uuid(), sa.ForeignKey("projects.id", ondelete="CASCADE")),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("provider", sa.String(20), nullable=False),
        sa.Column("provider_id", sa.String(200)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("path", sa.Text()),
        _ts("created_at"),
    )
    op.create_index("ix_email_log_project_created", "email_log", ["project_id", "created_at"])

    rls.install_functions()
    rls.protect_with("orgs", "kap_is_org_member(id)", privileges="SELECT, UPDATE")
    rls.protect_with("users", "id = kap_user_id() OR kap_shares_org(id)", "id = kap_user_id()",
                     privileges="SELECT, UPDATE")
    rls.protect_with("org_members", "user_id = kap_user_id() OR kap_is_org_member(org_id)",
                     "kap_is_org_admin(org_id)", privileges="SELECT")
    rls.protect_with("projects", f"id IN {rls.VISIBLE_PROJECTS}", "kap_is_org_member(org_id)",
                     privileges="SELECT, INSERT, UPDATE")
    rls.protect_with("project_members", f"project_id IN {rls.VISIBLE_PROJECTS}",
                     f"project_id IN {rls.VISIBLE_PROJECTS} OR kap_created_project(project_id)")
    rls.protect_with(
        "audit_events",
        f"project_id IN {rls.VISIBLE_PROJECTS} OR kap_is_org_admin(org_id)",
        "(project_id IS NULL AND kap_is_org_member(org_id)) OR (project_id IS NOT NULL AND "
        f"(project_id IN {rls.VISIBLE_PROJECTS} OR kap_created_project(project_id)))",
        privileges="SELECT, INSERT",
    )
    rls.protect_with("telemetry_events", "kap_is_org_admin(org_id)", privileges="SELECT")
    rls.protect_with("email_log",
                     f"kap_is_org_admin(org_id) OR project_id IN {rls.VISIBLE_PROJECTS}",
                     f"project_id IN {rls.VISIBLE_PROJECTS} OR "
                     "(project_id IS NULL AND (org_id IS NULL OR kap_is_org_member(org_id)))",
                     privileges="SELECT, INSERT")
    rls.protect("login_tokens", "service")
    rls.protect("user_sessions", "service")


def downgrade() -> None:
    for table in ("email_log", "user_sessions", "login_tokens", "telemetry_events", "audit_events",
                  "project_members", "projects", "org_members", "users", "orgs"):
        op.drop_table(table)
