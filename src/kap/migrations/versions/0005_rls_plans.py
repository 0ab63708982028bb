"""Row-level security keeps its plans: `kap_visible_project_ids` becomes PL/pgSQL.

A SECURITY DEFINER SQL function is never inlined and was planned again at every statement
whose policy called it; a PL/pgSQL one keeps its plan for the session. The answer is the
same set of project ids. A no-op on SQLite.

Revision ID: 0005_rls_plans
Revises: 0004_mail_outbox
"""

from alembic import op

from kap.core import rls

revision = "0005_rls_plans"
down_revision = "0004_mail_outbox"
branch_labels = None
depends_on = None

SQL_BODY = """
CREATE OR REPLACE FUNCTION kap_visible_project_ids() RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = {schema} AS $$
  SELECT pm.project_id FROM project_members pm WHERE pm.user_id = kap_user_id()
  UNION
  SELECT p.id FROM projects p JOIN org_members m ON m.org_id = p.org_id
   WHERE m.user_id = kap_user_id() AND m.role IN ({org_admin_roles})
$$;
"""


def upgrade() -> None:
    if rls.is_postgres():
        op.execute(rls.visible_projects_sql(rls.schema_path()))


def downgrade() -> None:
    if rls.is_postgres():
        op.execute(rls.visible_projects_sql(rls.schema_path(), SQL_BODY))
