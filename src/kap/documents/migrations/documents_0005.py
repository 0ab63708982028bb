"""Documents: one index on a chunk's (project, artifact, seq) instead of the project alone.

Every read or delete of one document's chunks names both the project and the artifact.
Without statistics SQLite picked the single-column project index for those and walked
all of the project's chunks to find one document's (a re-ingest of a 15-page file in a
project of 2,400 chunks spent 2.6 ms deleting nothing). The composite index serves
both those lookups and the project-only ones (its prefix) on either engine.

Revision ID: documents_0005
Revises: documents_0004
"""

from alembic import op

revision = "documents_0005"
down_revision = "documents_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_artifact_chunks_project_artifact", "artifact_chunks", ["project_id", "artifact_id", "seq"])
    op.drop_index("ix_artifact_chunks_project", table_name="artifact_chunks")


def downgrade() -> None:
    op.create_index("ix_artifact_chunks_project", "artifact_chunks", ["project_id"])
    op.drop_index("ix_artifact_chunks_project_artifact", table_name="artifact_chunks")
