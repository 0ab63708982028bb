"""Documents: each project a contiguous rowid range inside the SQLite FTS5 indexes.

The FTS rowid of a chunk is `(project number << 32) | chunk rowid`, the project number a
small integer from `fts_projects` (assigned once, never reused). A query bounds rowid to
its project's range, which FTS5 applies inside its doclist scan: the work follows the
project's own postings, not the whole database's. Before, the project was an indexed
`proj` token, and every query intersected that token's doclist with each term's across
every project. The `proj` column goes (it only made the index bigger). PostgreSQL needs
nothing here: its GIN index already holds (project_id, tsv).

Revision ID: documents_0004
Revises: documents_0003
"""

from alembic import op

from kap.core import rls

revision = "documents_0004"
down_revision = "documents_0003"
branch_labels = None
depends_on = None

HEAD_SQL = "substr({t}, 1, instr({t} || char(10), char(10)) - 1)"
# The FTS rowid of chunk row `r`: its project's number in the high 32 bits, the chunk's rowid in the low.
KEY_SQL = "(((SELECT num FROM fts_projects WHERE project_id = {r}.project_id) << 32) | {r}.rowid)"
NUMBER_SQL = "INSERT OR IGNORE INTO fts_projects(project_id) VALUES ({r}.project_id); "

_FTS_NEW = f"{KEY_SQL.format(r='new')}, new.text, new.id"
_STEM_NEW = f"{KEY_SQL.format(r='new')}, {HEAD_SQL.format(t='new.text')}, new.text"
_STEM_OLD = f"'delete', {KEY_SQL.format(r='old')}, {HEAD_SQL.format(t='old.text')}, old.text"

DROP_TRIGGERS = [f"DROP TRIGGER IF EXISTS artifact_chunks_{table}_{name}"
                 for table in ("fts", "stem") for name in ("ai", "ad", "au")]

SQLITE_UP = [
    # No foreign key: a project's delete cascades to its chunks, whose triggers still need the number.
    "CREATE TABLE fts_projects (num INTEGER PRIMARY KEY AUTOINCREMENT, project_id CHAR(32) NOT NULL UNIQUE)",
    "INSERT INTO fts_projects(project_id) SELECT id FROM projects ORDER BY created_at, id",
    "INSERT OR IGNORE INTO fts_projects(project_id) SELECT DISTINCT project_id FROM artifact_chunks",
    *DROP_TRIGGERS,
    "DROP TABLE artifact_chunks_fts",
    "DROP TABLE artifact_chunks_stem",
    "CREATE VIRTUAL TABLE artifact_chunks_fts USING fts5("
    "body, chunk_id UNINDEXED, tokenize = 'unicode61 remove_diacritics 2')",
    "CREATE VIRTUAL TABLE artifact_chunks_stem USING fts5("
    "head, body, content = '', tokenize = 'porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER artifact_chunks_fts_ai AFTER INSERT ON artifact_chunks BEGIN " + NUMBER_SQL.format(r="new")
    + f"INSERT OR REPLACE INTO artifact_chunks_fts(rowid, body, chunk_id) VALUES ({_FTS_NEW}); END",
    "CREATE TRIGGER artifact_chunks_fts_ad AFTER DELETE ON artifact_chunks BEGIN "
    f"DELETE FROM artifact_chunks_fts WHERE rowid = {KEY_SQL.format(r='old')}; END",
    "CREATE TRIGGER artifact_chunks_fts_au AFTER UPDATE OF text, project_id ON artifact_chunks BEGIN "
    + NUMBER_SQL.format(r="new") + f"DELETE FROM artifact_chunks_fts WHERE rowid = {KEY_SQL.format(r='old')}; "
    f"INSERT OR REPLACE INTO artifact_chunks_fts(rowid, body, chunk_id) VALUES ({_FTS_NEW}); END",
    "CREATE TRIGGER artifact_chunks_stem_ai AFTER INSERT ON artifact_chunks BEGIN " + NUMBER_SQL.format(r="new")
    + f"INSERT INTO artifact_chunks_stem(rowid, head, body) VALUES ({_STEM_NEW}); END",
    "CREATE TRIGGER artifact_chunks_stem_ad AFTER DELETE ON artifact_chunks BEGIN "
    f"INSERT INTO artifact_chunks_stem(artifact_chunks_stem, rowid, head, body) VALUES ({_STEM_OLD}); END",
    "CREATE TRIGGER artifact_chunks_stem_au AFTER UPDATE OF text, project_id ON artifact_chunks BEGIN "
    + NUMBER_SQL.format(r="new")
    + f"INSERT INTO artifact_chunks_stem(artifact_chunks_stem, rowid, head, body) VALUES ({_STEM_OLD}); "
    f"INSERT INTO artifact_chunks_stem(rowid, head, body) VALUES ({_STEM_NEW}); END",
    f"INSERT INTO artifact_chunks_fts(rowid, body, chunk_id) SELECT {KEY_SQL.format(r='c')}, c.text, c.id "
    "FROM artifact_chunks c",
    f"INSERT INTO artifact_chunks_stem(rowid, head, body) SELECT {KEY_SQL.format(r='c')}, "
    f"{HEAD_SQL.format(t='c.text')}, c.text FROM artifact_chunks c",
]

# The documents_0001 / documents_0002 tables and triggers, the project an indexed `proj` token.
_OLD_NEW = "new.rowid, 'p' || new.project_id, " + HEAD_SQL.format(t="new.text") + ", new.text"
_OLD_OLD = "'delete', old.rowid, 'p' || old.project_id, " + HEAD_SQL.format(t="old.text") + ", old.text"
SQLITE_DOWN = [
    *DROP_TRIGGERS,
    "DROP TABLE artifact_chunks_fts",
    "DROP TABLE artifact_chunks_stem",
    "DROP TABLE fts_projects",
    "CREATE VIRTUAL TABLE artifact_chunks_fts USING fts5("
    "proj, body, chunk_id UNINDEXED, tokenize = 'unicode61 remove_diacritics 2')",
    "CREATE TRIGGER artifact_chunks_fts_ai AFTER INSERT ON artifact_chunks BEGIN "
    "INSERT OR REPLACE INTO artifact_chunks_fts(rowid, proj, body, chunk_id) "
    "VALUES (new.rowid, 'p' || new.project_id, new.text, new.id); END",
    "CREATE TRIGGER artifact_chunks_fts_ad AFTER DELETE ON artifact_chunks BEGIN "
    "DELETE FROM artifact_chunks_fts WHERE rowid = old.rowid; END",
    "CREATE TRIGGER artifact_chunks_fts_au AFTER UPDATE OF text, project_id ON artifact_chunks BEGIN "
    "DELETE FROM artifact_chunks_fts WHERE rowid = old.rowid; "
    "INSERT OR REPLACE INTO artifact_chunks_fts(rowid, proj, body, chunk_id) "
    "VALUES (new.rowid, 'p' || new.project_id, new.text, new.id); END",
    "CREATE VIRTUAL TABLE artifact_chunks_stem USING fts5("
    "proj, head, body, content = '', tokenize = 'porter unicode61 remove_diacritics 2')",
    f"CREATE TRIGGER artifact_chunks_stem_ai AFTER INSERT ON artifact_chunks BEGIN "
    f"INSERT INTO artifact_chunks_stem(rowid, proj, head, body) VALUES ({_OLD_NEW}); END",
    f"CREATE TRIGGER artifact_chunks_stem_ad AFTER DELETE ON artifact_chunks BEGIN "
    f"INSERT INTO artifact_chunks_stem(artifact_chunks_stem, rowid, proj, head, body) VALUES ({_OLD_OLD}); END",
    f"CREATE TRIGGER artifact_chunks_stem_au AFTER UPDATE OF text, project_id ON artifact_chunks BEGIN "
    f"INSERT INTO artifact_chunks_stem(artifact_chunks_stem, rowid, proj, head, body) VALUES ({_OLD_OLD}); "
    f"INSERT INTO artifact_chunks_stem(rowid, proj, head, body) VALUES ({_OLD_NEW}); END",
    "INSERT INTO artifact_chunks_fts(rowid, proj, body, chunk_id) "
    "SELECT rowid, 'p' || project_id, text, id FROM artifact_chunks",
    "INSERT INTO artifact_chunks_stem(rowid, proj, head, body) SELECT rowid, 'p' || project_id, "
    + HEAD_SQL.format(t="text") + ", text FROM artifact_chunks",
]


def upgrade() -> None:
    if not rls.is_postgres():
        for statement in SQLITE_UP:
            op.execute(statement)


def downgrade() -> None:
    if not rls.is_postgres():
        for statement in SQLITE_DOWN:
            op.execute(statement)
