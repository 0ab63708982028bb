"""Ask: how many of a project's chunks hold each stemmed word, kept by the database (PostgreSQL).

`ask_term_counts` holds signed counts per (project, lexeme of `tsv_en`): statement triggers on
`artifact_chunks` add a row per lexeme for the chunks a statement inserts, take one away for the
ones it deletes, and both for an update that changes a chunk's text or project. The rows of one
(project, lexeme) sum to the number of the project's chunks holding it, in every transaction, so an
ingest, a re-ingest, a deleted document or project and a restore all keep it right; only additions
are written (no row is updated), so concurrent ingests never wait on each other's counts.
`kap_compact_term_counts(project)` folds a project's rows into one per lexeme.

`kap_count_term(project, words, query, cap)` is `kap_count_chunks` for one question term (a word
and its synonyms): a synonym held by `cap` chunks or more answers `cap` with no index scan (the GIN
bitmap of a common word is built in full before a LIMIT applies); a lone single-lexeme word
answers its count; anything else (a phrase, a word of several lexemes) is counted live.
SQLite needs nothing: its counts stop at the cap inside the FTS5 scan.

Revision ID: ask_0003
Revises: ask_0002
"""

from alembic import op

from kap.core import rls

revision = "ask_0003"
down_revision = "ask_0002"
branch_labels = None
depends_on = "documents_0002"

TABLE = """
CREATE TABLE ask_term_counts (
  project_id uuid NOT NULL,
  lexeme text NOT NULL,
  chunks integer NOT NULL
)
"""

LEXEMES = "unnest(tsvector_to_array({row}.tsv_en)) AS l(lexeme)"

TRIGGER_FUNCTION = f"""
CREATE OR REPLACE FUNCTION kap_ask_term_counts() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {{schema}} AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO ask_term_counts (project_id, lexeme, chunks)
    SELECT n.project_id, l.lexeme, count(*) FROM new_rows n, {LEXEMES.format(row="n")} GROUP BY 1, 2;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO ask_term_counts (project_id, lexeme, chunks)
    SELECT o.project_id, l.lexeme, -count(*) FROM old_rows o, {LEXEMES.format(row="o")} GROUP BY 1, 2;
  ELSE
    INSERT INTO ask_term_counts (project_id, lexeme, chunks)
    SELECT r.project_id, l.lexeme, sum(r.sign) FROM (
      SELECT n.project_id, n.tsv_en, 1 AS sign FROM new_rows n JOIN old_rows o ON o.id = n.id
      WHERE (n.project_id, n.text) IS DISTINCT FROM (o.project_id, o.text)
      UNION ALL
      SELECT o.project_id, o.tsv_en, -1 FROM old_rows o JOIN new_rows n ON n.id = o.id
      WHERE (n.project_id, n.text) IS DISTINCT FROM (o.project_id, o.text)) AS r, {LEXEMES.format(row="r")}
    GROUP BY 1, 2 HAVING sum(r.sign) <> 0;
  END IF;
  RETURN NULL;
END
$$;
"""

TRIGGERS = (
    "CREATE TRIGGER ask_term_counts_ai AFTER INSERT ON artifact_chunks REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION kap_ask_term_counts()",
    "CREATE TRIGGER ask_term_counts_ad AFTER DELETE ON artifact_chunks REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION kap_ask_term_counts()",
    "CREATE TRIGGER ask_term_counts_au AFTER UPDATE ON artifact_chunks "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kap_ask_term_counts()",
)

FUNCTIONS = """
CREATE OR REPLACE FUNCTION kap_count_term(target uuid, words text[], query tsquery, cap integer)
RETURNS integer
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = {schema} AS $$
DECLARE
  word text;
  lexemes text[];
  held bigint;
  most bigint := 0;
  exact boolean := coalesce(array_length(words, 1), 0) = 1;
BEGIN
  IF NOT kap_can_see_project(target) THEN
    RETURN 0;
  END IF;
  FOREACH word IN ARRAY words LOOP
    lexemes := tsvector_to_array(to_tsvector('english', word));
    IF coalesce(array_length(lexemes, 1), 0) <> 1 THEN
      exact := false;
      CONTINUE;
    END IF;
    SELECT coalesce(sum(t.chunks), 0) INTO held FROM ask_term_counts t
    WHERE t.project_id = target AND t.lexeme = lexemes[1];
    most := greatest(most, held);
  END LOOP;
  IF most >= cap THEN
    RETURN cap;
  ELSIF exact THEN
    RETURN most;
  END IF;
  RETURN kap_count_chunks(target, query, cap);
END
$$;

CREATE OR REPLACE FUNCTION kap_compact_term_counts(target uuid) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = {schema} AS $$
  WITH gone AS (DELETE FROM ask_term_counts WHERE project_id = target RETURNING lexeme, chunks)
  INSERT INTO ask_term_counts (project_id, lexeme, chunks)
  SELECT target, lexeme, sum(chunks) FROM gone GROUP BY lexeme HAVING sum(chunks) <> 0
$$;
"""

COUNT_SIGNATURE = "kap_count_term(uuid, text[], tsquery, integer)"
COMPACT_SIGNATURE = "kap_compact_term_counts(uuid)"


def upgrade() -> None:
    if not rls.is_postgres():
        return
    schema = rls.schema_path()
    op.execute(TABLE)
    op.execute("CREATE INDEX ix_ask_term_counts_project_lexeme ON ask_term_counts (project_id, lexeme)")
    rls.protect("ask_term_counts", "service")
    op.execute(TRIGGER_FUNCTION.format(schema=schema))
    op.execute(FUNCTIONS.format(schema=schema))
    op.execute(f"GRANT EXECUTE ON FUNCTION {COUNT_SIGNATURE} TO {rls.app_role()}")
    # No chunk may be written between the counts below and the triggers taking over.
    op.execute("LOCK TABLE artifact_chunks IN SHARE MODE")
    for trigger in TRIGGERS:
        op.execute(trigger)
    op.execute("INSERT INTO ask_term_counts (project_id, lexeme, chunks) "
               f"SELECT c.project_id, l.lexeme, count(*) FROM artifact_chunks c, {LEXEMES.format(row='c')} "
               "GROUP BY 1, 2")


def downgrade() -> None:
    if not rls.is_postgres():
        return
    for name in ("ai", "ad", "au"):
        op.execute(f"DROP TRIGGER IF EXISTS ask_term_counts_{name} ON artifact_chunks")
    op.execute(f"DROP FUNCTION IF EXISTS {COUNT_SIGNATURE}")
    op.execute(f"DROP FUNCTION IF EXISTS {COMPACT_SIGNATURE}")
    op.execute("DROP FUNCTION IF EXISTS kap_ask_term_counts()")
    op.execute("DROP TABLE IF EXISTS ask_term_counts")
