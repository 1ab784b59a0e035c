"""bulk data: $export / $import jobs, their NDJSON files and the files' chunks

Revision ID: 0006
Revises: 0005

Jobs live in the database (the embedded default needs no Redis; with Redis, arq only dispatches
their slices to `gateway worker` processes). A job's per-type cursor is committed with the
chunk of lines it covers, so a worker that dies loses nothing and repeats nothing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bulk_jobs",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(256), nullable=False),
        sa.Column("organization", sa.String(128)),
        sa.Column("role", sa.String(32)),
        sa.Column("scopes", sa.Text()),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("transaction_time", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger()),
        sa.Column("lease_owner", sa.String(128)),
        sa.Column("lease_until", sa.BigInteger()),
        sa.Column("turn", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text()),
    )
    op.create_index("ix_bulk_jobs_status_turn", "bulk_jobs", ["status", "turn"])
    op.create_index("ix_bulk_jobs_owner", "bulk_jobs", ["owner", "status"])
    op.create_table(
        "bulk_files",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
    )
    op.create_table(
        "bulk_chunks",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("bulk_chunks")
    op.drop_table("bulk_files")
    op.drop_index("ix_bulk_jobs_owner", table_name="bulk_jobs")
    op.drop_index("ix_bulk_jobs_status_turn", table_name="bulk_jobs")
    op.drop_table("bulk_jobs")
