"""search indexes: reverse references, identifiers, date ends, LIKE-prefix on PostgreSQL

Revision ID: 0002
Revises: 0001

Index rows gained Identifier.type rows for :of-type (param '<code>:of-type'); existing
databases pick them up with `gateway reindex`.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# (name, table, columns); PostgreSQL-only ones carry text_pattern_ops for LIKE 'prefix%'
# (the database collation is not necessarily "C").
INDEXES = [
    ("ix_idx_reference_target", "idx_reference", ["target_id", "target_type", "param"]),
    ("ix_idx_reference_ident", "idx_reference", ["res_type", "param", "ident_value"]),
    ("ix_idx_reference_url", "idx_reference", ["res_type", "param", "url"]),
    ("ix_idx_date_high", "idx_date", ["res_type", "param", "high"]),
]
PG_PATTERN = [
    ("ix_idx_string_prefix", "idx_string", "norm"),
    ("ix_idx_token_text", "idx_token", "text"),
    ("ix_idx_uri_prefix", "idx_uri", "uri"),
]


def upgrade() -> None:
    for name, table, cols in INDEXES:
        op.create_index(name, table, cols)
    if op.get_bind().dialect.name == "postgresql":
        for name, table, col in PG_PATTERN:
            op.create_index(
                name, table, ["res_type", "param", col], postgresql_ops={col: "text_pattern_ops"}
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, table, _ in PG_PATTERN:
            op.drop_index(name, table_name=table)
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)
