"""leaner indexes for writes, covering and ordered for paging

Revision ID: 0003
Revises: 0002

Every index is paid for on every write (~12 index rows per resource). This revision
- merges the two reference indexes into one keyed by target (value searches, reverse
  references, chains and _has all start from the target id), ending in res_id so a page
  ordered by id streams from it;
- keys the token value index (type, param, code, id, system): `code=x` and `system|code`
  pages stream in id order, and the system is checked inside the index;
- makes the identifier and absolute-URL reference indexes partial (most references have
  neither);
- ends every value index in res_id: matches are found and counted from the index alone
  (index-only scans), never from the table rows;
- drops the outbox's published index: the relay deletes what it publishes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


# (name, table, columns before this revision, columns now): value indexes end in res_id.
_COVERED_SPEC = [
    (
        "ix_idx_date_value",
        "idx_date",
        ["res_type", "param", "low", "high"],
        ["res_type", "param", "low", "high", "res_id"],
    ),
    (
        "ix_idx_date_high",
        "idx_date",
        ["res_type", "param", "high"],
        ["res_type", "param", "high", "low", "res_id"],
    ),
    *(
        (f"ix_idx_{kind}_value", f"idx_{kind}", ["res_type", "param", col], None)
        for kind, col in (
            ("string", "norm"),
            ("number", "value"),
            ("quantity", "value"),
            ("uri", "uri"),
        )
    ),
]
COVERED: list[tuple[str, str, list[str], list[str]]] = [
    (n, t, old, new or [*old, "res_id"]) for n, t, old, new in _COVERED_SPEC
]
PG_PATTERN = [
    ("ix_idx_string_prefix", "idx_string", "norm"),
    ("ix_idx_token_text", "idx_token", "text"),
    ("ix_idx_uri_prefix", "idx_uri", "uri"),
]


def _partial(column: str) -> dict:
    cond = sa.text(f"{column} IS NOT NULL")
    return {"postgresql_where": cond, "sqlite_where": cond}


def upgrade() -> None:
    op.drop_index("ix_idx_reference_value", table_name="idx_reference")
    op.drop_index("ix_idx_reference_target", table_name="idx_reference")
    op.create_index(
        "ix_idx_reference_target",
        "idx_reference",
        ["target_id", "target_type", "res_type", "param", "res_id"],
    )
    op.drop_index("ix_idx_reference_ident", table_name="idx_reference")
    op.create_index(
        "ix_idx_reference_ident",
        "idx_reference",
        ["res_type", "param", "ident_value"],
        **_partial("ident_value"),
    )
    op.drop_index("ix_idx_reference_url", table_name="idx_reference")
    op.create_index(
        "ix_idx_reference_url", "idx_reference", ["res_type", "param", "url"], **_partial("url")
    )
    op.drop_index("ix_idx_token_value", table_name="idx_token")
    op.create_index(
        "ix_idx_token_value", "idx_token", ["res_type", "param", "code", "res_id", "system"]
    )
    op.drop_index("ix_outbox_unpublished", table_name="outbox")
    for name, table, _, new in COVERED:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, new)
    if op.get_bind().dialect.name == "postgresql":
        for name, table, col in PG_PATTERN:
            op.drop_index(name, table_name=table)
            op.create_index(
                name,
                table,
                ["res_type", "param", col, "res_id"],
                postgresql_ops={col: "text_pattern_ops"},
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, table, col in PG_PATTERN:
            op.drop_index(name, table_name=table)
            op.create_index(
                name, table, ["res_type", "param", col], postgresql_ops={col: "text_pattern_ops"}
            )
    for name, table, _, old in COVERED:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, old)
    op.create_index("ix_outbox_unpublished", "outbox", ["published", "seq"])
    op.drop_index("ix_idx_token_value", table_name="idx_token")
    op.create_index("ix_idx_token_value", "idx_token", ["res_type", "param", "code", "system"])
    op.drop_index("ix_idx_reference_url", table_name="idx_reference")
    op.create_index("ix_idx_reference_url", "idx_reference", ["res_type", "param", "url"])
    op.drop_index("ix_idx_reference_ident", table_name="idx_reference")
    op.create_index("ix_idx_reference_ident", "idx_reference", ["res_type", "param", "ident_value"])
    op.drop_index("ix_idx_reference_target", table_name="idx_reference")
    op.create_index(
        "ix_idx_reference_target", "idx_reference", ["target_id", "target_type", "param"]
    )
    op.create_index(
        "ix_idx_reference_value", "idx_reference", ["res_type", "param", "target_id", "target_type"]
    )
