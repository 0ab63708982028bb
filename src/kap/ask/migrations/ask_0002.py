"""Ask: rank the relaxation tiers of a question in one call (PostgreSQL).

`kap_rank_tiers(project, tiers, max_rows, cap)` walks the tiers (tsqueries, best first)
and returns each tier's chunks not already returned by an earlier one, ranked by
`ts_rank` (as `kap_rank_chunks` did), until `max_rows` are found; a tier
ranks at most `cap` of its matching chunks. Like the other ranking functions it checks
the project's visibility once, then uses the (project_id, tsv_en) GIN index. SQLite needs
nothing: its queries run in the process. (PL/pgSQL resolves `tsv_en`, added by documents_0002, when called.)

Revision ID: ask_0002
Revises: ask_0001
"""

from alembic import op

from kap.core import rls

revision = "ask_0002"
down_revision = "ask_0001"
branch_labels = None
depends_on = None

SIGNATURE = "kap_rank_tiers(uuid, tsquery[], integer, integer)"

FUNCTION = """
CREATE OR REPLACE FUNCTION kap_rank_tiers(target uuid, tiers tsquery[], max_rows integer, cap integer)
RETURNS TABLE (id uuid, tier integer, score real)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = {schema} AS $$
DECLARE
  seen tsquery;
  found integer := 0;
  got integer;
BEGIN
  IF NOT kap_can_see_project(target) THEN
    RETURN;
  END IF;
  FOR i IN 1 .. coalesce(array_length(tiers, 1), 0) LOOP
    RETURN QUERY
      SELECT s.id, i, ts_rank(s.tsv_en, tiers[i]) FROM (
        SELECT c.id, c.tsv_en FROM artifact_chunks c
        WHERE c.project_id = target AND c.tsv_en @@ tiers[i] AND (seen IS NULL OR NOT c.tsv_en @@ seen)
        LIMIT cap) AS s
      ORDER BY 3 DESC, 1
      LIMIT max_rows - found;
    GET DIAGNOSTICS got = ROW_COUNT;
    found := found + got;
    EXIT WHEN found >= max_rows;
    seen := CASE WHEN seen IS NULL THEN tiers[i] ELSE seen || tiers[i] END;
  END LOOP;
END
$$;
"""


def upgrade() -> None:
    if rls.is_postgres():
        schema = op.get_bind().exec_driver_sql("select current_schema()").scalar_one()
        op.execute(FUNCTION.format(schema=f'pg_catalog, "{schema}"'))
        op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {rls.app_role()}")


def downgrade() -> None:
    if rls.is_postgres():
        op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
