"""Comms: settings, subscriptions, digest sends, mail suppressions, Mailgun webhook tokens.

Revision ID: comms_0001
Revises: documents_0001
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from kap.core import rls

revision = "comms_0001"
down_revision = "documents_0001"
branch_labels = ("comms",)
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _tenant() -> list[sa.Column[Any]]:
    return [
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("org_id", sa.Uuid(), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("project_id", sa.Uuid(), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "comms_settings",
        *_tenant(),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("quiet_start", sa.String(5)),
        sa.Column("quiet_end", sa.String(5)),
        sa.Column("daily_cap", sa.Integer(), nullable=False),
        sa.Column("digest_weekday", sa.Integer(), nullable=False),
        sa.Column("digest_hour", sa.Integer(), nullable=False),
        sa.Column("digest_enabled", sa.Boolean(), nullable=False),
        _ts("planned_window", nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("project_id", name="uq_comms_settings_project_id"),
        sa.CheckConstraint("digest_weekday BETWEEN 0 AND 6", name="ck_comms_settings_weekday"),
        sa.CheckConstraint("digest_hour BETWEEN 0 AND 23", name="ck_comms_settings_hour"),
        sa.CheckConstraint("daily_cap >= 1", name="ck_comms_settings_cap"),
    )
    op.create_table(
        "comms_subscriptions",
        *_tenant(),
        sa.Column("recipient_key", sa.String(340), nullable=False),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE")),
        sa.Column("email", sa.String(320)),
        sa.Column("name", sa.String(200)),
        sa.Column("category", sa.String(20), nullable=False),
        sa.Column("subscribed", sa.Boolean(), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        _ts("unsubscribed_at", nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("project_id", "recipient_key", "category", name="uq_comms_subscriptions_recipient"),
        sa.UniqueConstraint("token", name="uq_comms_subscriptions_token"),
        sa.CheckConstraint("category IN ('digest', 'signoff', 'alerts')", name="ck_comms_subscriptions_category"),
    )
    op.create_table(
        "digest_sends",
        *_tenant(),
        sa.Column("recipient_key", sa.String(340), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("iso_week", sa.String(10), nullable=False),
        _ts("window_start"),
        sa.Column("status", sa.String(20), nullable=False),
        _ts("not_before", nullable=True),
        sa.Column("defer_reason", sa.String(40)),
        sa.Column("deferrals", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("claimed_at", nullable=True),
        sa.Column("claim_token", sa.String(32)),
        _ts("sent_at", nullable=True),
        sa.Column("email_log_id", sa.Uuid()),
        sa.Column("error", sa.Text()),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("project_id", "recipient_key", "iso_week", name="uq_digest_sends_week"),
        sa.CheckConstraint("status IN ('due', 'deferred', 'sending', 'sent', 'suppressed', 'failed')",
                           name="ck_digest_sends_status"),
    )
    op.create_index("ix_digest_sends_status_not_before", "digest_sends", ["status", "not_before"])
    op.create_index("ix_digest_sends_claim_token", "digest_sends", ["claim_token"])
    op.create_table(
        "mail_suppressions",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("detail", sa.String(500)),
        _ts("created_at"),
        sa.UniqueConstraint("email", name="uq_mail_suppressions_email"),
    )
    op.create_table(
        "mailgun_webhook_tokens",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("token", sa.String(200), nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("token", name="uq_mailgun_webhook_tokens_token"),
    )
    op.create_index("ix_mailgun_webhook_tokens_created_at", "mailgun_webhook_tokens", ["created_at"])
    for table in ("comms_settings", "comms_subscriptions", "digest_sends"):
        rls.protect(table, "project")
    rls.protect("mail_suppressions", "service")
    rls.protect("mailgun_webhook_tokens", "service")


def downgrade() -> None:
    for table in ("mailgun_webhook_tokens", "mail_suppressions", "digest_sends", "comms_subscriptions",
                  "comms_settings"):
        op.drop_table(table)
