"""Documents: search ranks at most a capped number of a project's matching chunks (PostgreSQL).

`kap_search_chunks(target, query, max_rows, only_artifacts, cap)` is the documents_0001
function with a cap: the GIN index finds the matches, and at most `cap` of them are read
and ranked (each read is a heap row with its tsvector; at 100,000 chunks a common word
matches thousands). The uncapped function is dropped. SQLite needs nothing here: its cap
is a rowid bound inside the FTS5 query.

Revision ID: documents_0003
Revises: documents_0002
"""

from alembic import op

from kap.core import rls

revision = "documents_0003"
down_revision = "documents_0002"
branch_labels = None
depends_on = None

OLD_SIGNATURE = "kap_search_chunks(uuid, tsquery, integer, uuid[])"
SIGNATURE = "kap_search_chunks(uuid, tsquery, integer, uuid[], integer)"

# Under RLS `tsv @@ query` would run after the per-row policy and miss the index (see documents_0001).
FUNCTION = """
CREATE OR REPLACE FUNCTION kap_search_chunks(target uuid, query tsquery, max_rows integer,
                                             only_artifacts uuid[] DEFAULT NULL, cap integer DEFAULT 1000)
RETURNS TABLE (id uuid, artifact_id uuid, page integer, locator varchar, body text, score real)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = {schema} AS $$
  SELECT s.id, s.artifact_id, s.page, s.locator, s.text, ts_rank_cd(s.tsv, query) FROM (
    SELECT c.id, c.artifact_id, c.page, c.locator, c.text, c.tsv
    FROM artifact_chunks c
    WHERE kap_can_see_project(target) AND c.project_id = target AND c.tsv @@ query
      AND (only_artifacts IS NULL OR c.artifact_id = ANY (only_artifacts))
    LIMIT cap) AS s
  ORDER BY 6 DESC, s.id
  LIMIT max_rows
$$;
"""

UNCAPPED = """
CREATE OR REPLACE FUNCTION kap_search_chunks(target uuid, query tsquery, max_rows integer,
                                             only_artifacts uuid[] DEFAULT NULL)
RETURNS TABLE (id uuid, artifact_id uuid, page integer, locator varchar, body text, score real)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = {schema} AS $$
  SELECT c.id, c.artifact_id, c.page, c.locator, c.text, ts_rank_cd(c.tsv, query)
  FROM artifact_chunks c
  WHERE kap_can_see_project(target) AND c.project_id = target AND c.tsv @@ query
    AND (only_artifacts IS NULL OR c.artifact_id = ANY (only_artifacts))
  ORDER BY 6 DESC, c.id
  LIMIT max_rows
$$;
"""


def upgrade() -> None:
    if rls.is_postgres():
        op.execute(FUNCTION.format(schema=rls.schema_path()))
        op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {rls.app_role()}")
        op.execute(f"DROP FUNCTION IF EXISTS {OLD_SIGNATURE}")


def downgrade() -> None:
    if rls.is_postgres():
        op.execute(UNCAPPED.format(schema=rls.schema_path()))
        op.execute(f"GRANT EXECUTE ON FUNCTION {OLD_SIGNATURE} TO {rls.app_role()}")
        op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
