"""Ask: rank the relaxation tiers of a question in one call (PostgreSQL).

`kap_rank_tiers(project, tiers, max_rows, cap)` walks the tiers (tsqueries, best first)
and returns each tier's best `max_rows` chunks by `ts_rank` (as `kap_rank_chunks` did) that an
earlier tier did not return, until `max_rows` are found; a tier
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
  seen uuid[] := '{{}}';
  hit record;
BEGIN
  IF NOT kap_can_see_project(target) THEN
    RETURN;
  END IF;
  FOR i IN 1 .. coalesce(array_length(tiers, 1), 0) LOOP
    FOR hit IN
      SELECT s.id AS chunk, ts_rank(s.tsv_en, tiers[i]) AS rank FROM (
        SELECT c.id, c.tsv_en FROM artifact_chunks c
        WHERE c.project_id = target AND c.tsv_en @@ tiers[i]
        LIMIT cap) AS s
      ORDER BY 2 DESC, 1
      LIMIT max_rows
    LOOP
      CONTINUE WHEN hit.chunk = ANY (seen);
      seen := seen || hit.chunk;
      id := hit.chunk;
      tier := i;
      score := hit.rank;
      RETURN NEXT;
    END LOOP;
    EXIT WHEN array_length(seen, 1) >= max_rows;
  END LOOP;
END
$$;
"""


def upgrade() -> None:
    if rls.is_postgres():
        op.execute(FUNCTION.format(schema=rls.schema_path()))
        op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {rls.app_role()}")


def downgrade() -> None:
    if rls.is_postgres():
        op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
