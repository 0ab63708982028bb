"""Documents: a stemmed full-text index beside the exact one, the first line of a chunk weighted.

SQLite: a contentless FTS5 table with the porter tokenizer (`proj`, `head`, `body`),
kept in step by triggers like the exact one. PostgreSQL: a stored `english` tsvector
(first line weight A, the whole text weight D) with a GIN index over (project_id, tsv_en),
and security-definer functions that rank and count within one visible project.

Revision ID: documents_0002
Revises: documents_0001
"""

from alembic import op

from kap.core import rls

revision = "documents_0002"
down_revision = "documents_0001"
branch_labels = None
depends_on = None

HEAD_SQL = "substr({t}, 1, instr({t} || char(10), char(10)) - 1)"
_NEW = "new.rowid, 'p' || new.project_id, " + HEAD_SQL.format(t="new.text") + ", new.text"
_OLD = "'delete', old.rowid, 'p' || old.project_id, " + HEAD_SQL.format(t="old.text") + ", old.text"

SQLITE_STEMMED = [
    "CREATE VIRTUAL TABLE artifact_chunks_stem USING fts5("
    "proj, head, body, content = '', tokenize = 'porter unicode61 remove_diacritics 2')",
    f"CREATE TRIGGER artifact_chunks_stem_ai AFTER INSERT ON artifact_chunks BEGIN "
    f"INSERT INTO artifact_chunks_stem(rowid, proj, head, body) VALUES ({_NEW}); END",
    f"CREATE TRIGGER artifact_chunks_stem_ad AFTER DELETE ON artifact_chunks BEGIN "
    f"INSERT INTO artifact_chunks_stem(artifact_chunks_stem, rowid, proj, head, body) VALUES ({_OLD}); END",
    f"CREATE TRIGGER artifact_chunks_stem_au AFTER UPDATE OF text, project_id ON artifact_chunks BEGIN "
    f"INSERT INTO artifact_chunks_stem(artifact_chunks_stem, rowid, proj, head, body) VALUES ({_OLD}); "
    f"INSERT INTO artifact_chunks_stem(rowid, proj, head, body) VALUES ({_NEW}); END",
    "INSERT INTO artifact_chunks_stem(rowid, proj, head, body) SELECT rowid, 'p' || project_id, "
    + HEAD_SQL.format(t="text") + ", text FROM artifact_chunks",
]

PG_TSV_EN = ("setweight(to_tsvector('english', split_part(text, E'\\n', 1)), 'A') || "
             "setweight(to_tsvector('english', text), 'D')")

# Under RLS `tsv_en @@ query` would run after the per-row policy and miss the index (see
# documents_0001); these check the project's visibility once, then use the index.
PG_FUNCTIONS = """
CREATE OR REPLACE FUNCTION kap_rank_chunks(target uuid, query tsquery, max_rows integer)
RETURNS TABLE (id uuid, score real)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = {schema} AS $$
  SELECT c.id, ts_rank(c.tsv_en, query)
  FROM artifact_chunks c
  WHERE kap_can_see_project(target) AND c.project_id = target AND c.tsv_en @@ query
  ORDER BY 2 DESC, c.id
  LIMIT max_rows
$$;

CREATE OR REPLACE FUNCTION kap_count_chunks(target uuid, query tsquery, cap integer)
RETURNS integer
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = {schema} AS $$
  SELECT count(*)::integer FROM (
    SELECT 1 FROM artifact_chunks c
    WHERE kap_can_see_project(target) AND c.project_id = target AND c.tsv_en @@ query
    LIMIT cap) AS hits
$$;
"""


def upgrade() -> None:
    if rls.is_postgres():
        op.execute(f"ALTER TABLE artifact_chunks ADD COLUMN tsv_en tsvector GENERATED ALWAYS AS ({PG_TSV_EN}) STORED")
        has_btree_gin = op.get_bind().exec_driver_sql(
            "SELECT count(*) FROM pg_extension WHERE extname = 'btree_gin'").scalar_one()
        columns = "project_id, tsv_en" if has_btree_gin else "tsv_en"
        op.execute(f"CREATE INDEX ix_artifact_chunks_project_tsv_en ON artifact_chunks USING gin ({columns})")
        op.execute(PG_FUNCTIONS.format(schema=rls.schema_path()))
        for signature in ("kap_rank_chunks(uuid, tsquery, integer)", "kap_count_chunks(uuid, tsquery, integer)"):
            op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {rls.app_role()}")
    else:
        for statement in SQLITE_STEMMED:
            op.execute(statement)


def downgrade() -> None:
    if rls.is_postgres():
        op.execute("DROP FUNCTION IF EXISTS kap_rank_chunks(uuid, tsquery, integer)")
        op.execute("DROP FUNCTION IF EXISTS kap_count_chunks(uuid, tsquery, integer)")
        op.execute("DROP INDEX IF EXISTS ix_artifact_chunks_project_tsv_en")
        op.execute("ALTER TABLE artifact_chunks DROP COLUMN IF EXISTS tsv_en")
    else:
        for name in ("ai", "ad", "au"):
            op.execute(f"DROP TRIGGER IF EXISTS artifact_chunks_stem_{name}")
        op.execute("DROP TABLE IF EXISTS artifact_chunks_stem")
